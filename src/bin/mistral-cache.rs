//! `mistral-cache`: a caching proxy for the Mistral API. See
//! [`mistral_tower::server::main`] for the commands (`mistral-cache --help` for the flags).

fn main() -> std::process::ExitCode {
    mistral_tower::server::main()
}
