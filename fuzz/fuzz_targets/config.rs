#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hallcast_fuzz::config(data));
