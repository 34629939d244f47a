//! The `orion` command line.

fn main() {
    println!("orion");
}
