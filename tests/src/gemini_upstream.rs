//! placeholder: the mock gemini upstream
