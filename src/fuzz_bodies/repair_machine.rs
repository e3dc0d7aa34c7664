//! Fuzz body `repair_machine` (docs/verification.md, row 5): the production
//! `RepairMachine` driven by a script decoded from the raw bytes (a start and up to 200
//! steps that follow the machine's phase or inject arbitrary events), with the invariants
//! 1–7 of docs/protocols/repair-machine.md checked after every step by the tracker in
//! [`repair_script`](super::repair_script).

use super::input::Input;
use super::repair_script::{self, Outcome, Script, Setup, Step};
use crate::protocol::RepairMode;
use crate::protocol::repair::RepairMachine;

/// Most steps one input decodes to.
const STEPS_MAX: usize = 200;

/// Decodes `data` into a script and runs it; a broken invariant panics with the
/// invariant's number and what happened.
pub fn repair_machine(data: &[u8]) {
    let script = decode(data);
    if let Err(violation) = repair_script::run_with::<RepairMachine>(&script) {
        panic!("{violation}\nscript: {script:?}");
    }
}

/// Every byte string is a script: missing bytes read as zeros.
pub(crate) fn decode(data: &[u8]) -> Script {
    let mut input = Input::new(data);
    let mode = match input.byte() % 4 {
        0 => RepairMode::None,
        1 => RepairMode::Relist,
        2 => RepairMode::Restore,
        _ => RepairMode::Auto,
    };
    let resume_byte = input.byte();
    let resume =
        (!resume_byte.is_multiple_of(3)).then_some((input.byte() % 16, resume_byte & 0x80 != 0));
    let flags = input.byte();
    let setup = Setup {
        mode,
        resume,
        unanchored: flags & 1 != 0,
        scope: flags >> 1,
    };
    let mut steps = Vec::new();
    while steps.len() < STEPS_MAX {
        let Some(&selector) = input.bytes(1).first() else {
            break;
        };
        let step = match selector % 8 {
            0..=4 => Step::Follow(outcome(&mut input)),
            5 | 6 => Step::Junk {
                kind: input.byte(),
                outcome: outcome(&mut input),
                back: input.byte(),
            },
            _ => Step::Advance(u32::from(input.byte()) * 1_000),
        };
        steps.push(step);
    }
    Script { setup, steps }
}

fn outcome(input: &mut Input<'_>) -> Outcome {
    let flags = input.byte();
    Outcome {
        kind: input.byte(),
        rank: input.byte(),
        evicts: flags & 1 != 0,
        first: input.byte(),
        scope: flags >> 1,
        memo: flags & 0x80 != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_decodes_to_a_bounded_script_that_keeps_the_invariants() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 3, 7, 64, 400, 2_000] {
            for _ in 0..200 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                let script = decode(&data);
                assert!(script.steps.len() <= STEPS_MAX);
                repair_machine(&data);
            }
        }
    }
}
