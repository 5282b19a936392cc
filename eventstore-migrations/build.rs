fn main() {
    // Re-embed the migrations when one is added or edited.
    println!("cargo:rerun-if-changed=migrations");
}
