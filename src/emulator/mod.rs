//! The offline stand-in for the OpenAI, Anthropic and Gemini APIs.

/// Timing of emulated answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmulatorOptions {
    pub latency_ms: u64,
    pub tokens_per_second: u32,
}
