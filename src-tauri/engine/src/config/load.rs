//! Reading a file into a [`Config`]: the TOML syntax first, then [`raw`](super::raw) with its
//! spans, then [`validate`](super::validate).

use std::path::Path;

use super::{Config, ConfigError, raw, report, validate};

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let src = report::Src { text, path };
        // Syntax first, so that a serde error below is always about keys and values.
        toml::de::DeTable::parse(text).map_err(|e| src.syntax(&e))?;
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| src.serde(&e))?;
        validate::convert(raw, src)
    }
}
