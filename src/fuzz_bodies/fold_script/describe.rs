//! One-line descriptions of events, updates, cursors and commands for a
//! violation's trace.

use super::Item;
use super::tracker::{event_name, event_now};
use crate::kv::{KvUpdate, WatchCursor};
use crate::protocol::fold::{FoldCommand, FoldEvent, RepairIo, RepairKind, StoreOutcome};

fn describe_update(update: &KvUpdate) -> String {
    let kind = match update {
        KvUpdate::Put(_) => "put",
        KvUpdate::Delete { .. } => "del",
        KvUpdate::Purge { .. } => "purge",
    };
    let version = update.version();
    match version.as_u64() {
        Some(rev) => format!("{kind} {}@{rev}", update.key()),
        None if version.is_unknown() => format!("{kind} {}@?", update.key()),
        None => format!("{kind} {}@{:?}", update.key(), version.as_bytes()),
    }
}

fn describe_cursor(cursor: &WatchCursor) -> String {
    let memo = if cursor.seen_evicting() { "+memo" } else { "" };
    match cursor.as_u64() {
        Some(rev) => format!("{rev}{memo}"),
        None => format!("none{memo}"),
    }
}

pub(super) fn describe(event: &FoldEvent<Item>) -> String {
    let now = event_now(event).0;
    let body = match event {
        FoldEvent::Update { update, parsed, .. } => {
            format!("Update({}, parsed {parsed:?})", describe_update(update))
        }
        FoldEvent::StoreApplied { outcome, .. } => match outcome {
            StoreOutcome::Committed => "StoreApplied(Committed)".to_string(),
            StoreOutcome::Failed { raw, .. } => format!("StoreApplied(Failed, {} raw)", raw.len()),
            StoreOutcome::Lost { .. } => "StoreApplied(Lost)".to_string(),
        },
        FoldEvent::ExportFinished { outcome, .. } => format!("ExportFinished({outcome:?})"),
        FoldEvent::RepairRequested { kind, .. } => match kind {
            RepairKind::Restore { target } => {
                format!("RepairRequested(Restore {})", describe_cursor(target))
            }
            kind => format!("RepairRequested({kind:?})"),
        },
        FoldEvent::RepairIo { result, .. } => match result {
            RepairIo::Corrections { items } => {
                let items: Vec<String> = items
                    .iter()
                    .map(|(u, p)| format!("{} {p:?}", describe_update(u)))
                    .collect();
                format!("RepairIo(Corrections {items:?})")
            }
            result => format!("RepairIo({result:?})"),
        },
        FoldEvent::WatchEnded { end, .. } => format!("WatchEnded({end:?})"),
        event => event_name(event).to_string(),
    };
    format!("t={now} {body}")
}

pub(super) fn describe_command(command: &FoldCommand<Item>) -> String {
    match command {
        FoldCommand::StoreApply { raw, cursor } => {
            let raw: Vec<String> = raw.iter().map(describe_update).collect();
            format!("StoreApply({raw:?}, {})", describe_cursor(cursor))
        }
        FoldCommand::OnApplied(cursor) => format!("OnApplied({})", describe_cursor(cursor)),
        command => format!("{command:?}"),
    }
}
