fn main() {
    for f in ams_security_operator::crd::render().unwrap() { print!("{}", f.contents); }
}
