#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kvfold::fuzz_bodies::repair_machine(data));
