//! Running a model's checker, written once for every model: explore the whole
//! space and assert every property, find one property's counterexample, or
//! list the properties with one.

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::time::Instant;

use stateright::{Checker, Expectation, HasDiscoveries, Model};

/// Explores the whole state space of `model` (named `name` in the log, with
/// its `bounds`), asserts every property (and that every witness was found),
/// and returns the number of unique states.
pub fn check_all<M>(name: &str, model: M, bounds: &dyn Debug) -> usize
where
    M: Model + Display + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + Debug + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    let started = Instant::now();
    let label = model.to_string();
    let checker = model.checker().spawn_bfs().join();
    let count = checker.unique_state_count();
    eprintln!(
        "{name} model ({label}) {bounds:?}: {count} unique states in {:?}",
        started.elapsed()
    );
    checker.assert_properties();
    count
}

/// Explores until `property` is discovered and returns the counterexample's
/// actions (printed for the reader), or `None` if the whole space keeps it.
pub fn counterexample<M>(model: M, property: &'static str) -> Option<String>
where
    M: Model + Display + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + Debug + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    let label = model.to_string();
    let checker = model
        .checker()
        .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
        .spawn_bfs()
        .join();
    let path = checker.discovery(property)?;
    let actions = format!("{:?}", path.clone().into_actions());
    eprintln!(
        "({label}) \"{property}\" fails after {actions}\nlast state: {:#?}",
        path.last_state()
    );
    Some(actions)
}

/// Explores the whole space and returns every `always` or `eventually`
/// property with a counterexample (sorted), and the number of unique states.
pub fn broken_properties<M>(name: &str, model: M, bounds: &dyn Debug) -> (Vec<&'static str>, usize)
where
    M: Model + Display + Send + Sync + Clone + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + Debug + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    let started = Instant::now();
    let label = model.to_string();
    let properties = model.properties();
    let checker = model.checker().spawn_bfs().join();
    assert!(checker.is_done());
    let count = checker.unique_state_count();
    let mut broken: Vec<_> = properties
        .into_iter()
        .filter(|p| p.expectation != Expectation::Sometimes)
        .map(|p| p.name)
        .filter(|name| checker.discovery(name).is_some())
        .collect();
    broken.sort_unstable();
    eprintln!(
        "{name} model ({label}) {bounds:?}: {count} unique states in {:?}",
        started.elapsed()
    );
    (broken, count)
}
