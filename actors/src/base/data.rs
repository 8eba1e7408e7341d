//! What flows on a stream ([`Data`]) and what a stream can be keyed by ([`Key`]).

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What can flow on a stream: cloneable, sendable and serializable (remote exchange and state).
pub trait Data: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

/// What a stream can be keyed by.
pub trait Key: Data + Hash + Eq + Sync {}
