fn port() -> u16 {
    // One line, two panics: `expect` when PORT is unset, `unwrap` when it is not a number.
    std::env::var("PORT").ok().expect("port must be set").parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let v: Vec<u32> = vec![1, 2, 3];
    if args[1] == "index" {
        let i: usize = args[2].parse().unwrap();
        println!("{}", v[i]);
    } else if args[1] == "port" {
        println!("{}", port());
    } else {
        let n: Option<u32> = None;
        n.expect(&format!("no value for {:?}", args[2]));
    }
}
