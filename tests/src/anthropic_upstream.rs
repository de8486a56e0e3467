//! placeholder: the mock anthropic upstream
