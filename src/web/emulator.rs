//! Serves the emulator over HTTP, standalone or mounted in the Hub.
