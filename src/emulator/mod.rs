//! The offline stand-in for the OpenAI, Anthropic and Gemini APIs.
