import java.util.concurrent.CompletableFuture;

public class Crash {
    static void store(String id) { throw new IllegalStateException("disk full for " + id); }
    static void save(String id) {
        try { store(id); } catch (IllegalStateException e) {
            throw new RuntimeException("save " + id + " failed", e);
        }
    }
    public static void main(String[] args) {
        if (args[0].equals("save")) save(args[1]);
        else if (args[0].equals("async")) {
            // The cause is thrown on a pool thread: its in-app frame is the lambda.
            System.out.println(CompletableFuture.supplyAsync(() -> Integer.parseInt(args[1])).join());
        }
        else System.out.println(args[1].length() / Integer.parseInt(args[2]));
    }
}
