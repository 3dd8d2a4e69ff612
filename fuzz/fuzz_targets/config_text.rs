//! The config parser (`Config::parse`, what `posternd`, the app and the wizard read
//! postern.toml with) fed arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    postern_fuzz::check_config(&String::from_utf8_lossy(data));
});
