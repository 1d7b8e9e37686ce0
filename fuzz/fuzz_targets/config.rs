//! `.lockgate.toml` comes from the repository: parsing must fail cleanly, and a config
//! that parses must compile or fail with an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_core::{assess::Assessor, config::Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_toml(text) {
        let _ = Assessor::new(&config);
    }
});
