//! Serves the emulator over HTTP, standalone or mounted in the Hub.

pub async fn run_standalone(
    _listener: std::net::TcpListener,
    _options: crate::emulator::EmulatorOptions,
) -> std::io::Result<()> {
    Err(std::io::Error::other("the emulator is being integrated"))
}
