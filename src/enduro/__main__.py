from enduro.entry import main

main()
