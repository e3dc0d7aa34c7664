#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kvfold::fuzz_bodies::cursor_decode(data));
