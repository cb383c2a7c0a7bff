fn main() -> std::process::ExitCode {
    mdhub::main()
}
