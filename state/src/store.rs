//! The typed front end of keyed state: registers states by name on a backend and hands out
//! `Copy` handles through which a keyed operator reaches its typed tables; snapshots and
//! restores them all for checkpoints.
//!
//! A snapshot is either serialized at once ([`KeyedStateStore::snapshot`]) or started between
//! two records and serialized off the processing loop ([`KeyedStateStore::start_snapshot`]):
//! every table freezes its contents ([`FrozenTable`]; the memory tables share their key groups
//! and copy entries on write), and the frozen tables give the very bytes `snapshot` would have
//! given at that moment.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use crate::backend::{
    FrozenTable, KeyedStateBackend, ListTable, MapTable, RawTable, StateKind, TableFactory, ValueTable,
};
use crate::bytes::{ByteListTable, ByteMapTable, ByteValueTable};
use crate::checkpoint::{KeyedStateHandle, PendingKeyedSnapshot};
use crate::memory::{MemoryListTable, MemoryMapTable, MemoryValueTable};
use crate::snapshot::{KeyedSnapshot, StateSnapshot};
use crate::{KeyGroup, Result, StateData, StateError, StateKey, Types};

#[cfg(test)]
mod tests;

/// The keyed state of one operator subtask, keyed by `K`: owns the backend and the tables.
///
/// Handles are indices into this store. Passing a handle from another store to
/// [`value`](Self::value), [`list`](Self::list) or [`map`](Self::map) is a programming error: it
/// panics if this store has no state of that index, kind and types (and is not detected if it
/// happens to have one).
pub struct KeyedStateStore<K> {
    backend: Box<dyn KeyedStateBackend>,
    states: Vec<RegisteredState>,
    _key: PhantomData<fn() -> K>,
}

/// A state registered in a store.
struct RegisteredState {
    name: String,
    kind: StateKind,
    /// The `TypeId` of the state's namespace and value types as one tuple.
    types: TypeId,
    /// A `Box<dyn ValueTable<K, N, V>>` (or list or map table).
    table: Box<dyn Any + Send>,
    /// Snapshots a key group of `table` without knowing its types.
    snapshot_key_group: SnapshotFn,
    /// Restores a key group of `table` without knowing its types.
    restore_key_group: RestoreFn,
    /// Freezes `table` without knowing its types.
    freeze: FreezeFn,
}

/// Snapshots a key group of a type-erased table: a [`snapshot_erased`] for the table's type.
type SnapshotFn = fn(&(dyn Any + Send), KeyGroup) -> Result<Option<Vec<u8>>>;

/// Restores a key group of a type-erased table: a [`restore_erased`] for the table's type.
type RestoreFn = fn(&mut (dyn Any + Send), KeyGroup, &[u8]) -> Result<()>;

/// Freezes a type-erased table: a [`freeze_erased`] for the table's type.
type FreezeFn = fn(&mut (dyn Any + Send)) -> Result<Option<Box<dyn FrozenTable>>>;

/// Puts the name of the state and `kg` into a table's error, which knows neither.
fn locate(name: &str, kg: KeyGroup, err: StateError) -> StateError {
    match err {
        StateError::Corrupt { what } => StateError::Corrupt { what: format!("state {name:?} key group {kg}: {what}") },
        StateError::Backend(what) => StateError::Backend(format!("state {name:?} key group {kg}: {what}")),
        other => other,
    }
}

/// The snapshot of the state `name`: the bytes `snapshot_key_group` gives for each non-empty key
/// group of `key_groups`.
fn snapshot_state(
    name: &str,
    kind: StateKind,
    key_groups: Range<KeyGroup>,
    mut snapshot_key_group: impl FnMut(KeyGroup) -> Result<Option<Vec<u8>>>,
) -> Result<StateSnapshot> {
    let mut snapshot = StateSnapshot { name: name.to_owned(), kind, key_groups: Vec::new() };
    for kg in key_groups {
        if let Some(bytes) = snapshot_key_group(kg).map_err(|e| locate(name, kg, e))? {
            snapshot.key_groups.push((kg, bytes));
        }
    }
    Ok(snapshot)
}

impl<K> fmt::Debug for KeyedStateStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedStateStore")
            .field("backend", &self.backend.name())
            .field("key_groups", &self.backend.key_groups())
            .field("states", &self.states.iter().map(|s| (&s.name, s.kind)).collect::<Vec<_>>())
            .finish()
    }
}

impl<K: StateKey> KeyedStateStore<K> {
    /// A store with no states yet, keeping them in `backend`.
    pub fn new(backend: Box<dyn KeyedStateBackend>) -> Self {
        Self { backend, states: Vec::new(), _key: PhantomData }
    }

    /// The name of the backend, e.g. `"memory"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The key groups the backend covers.
    pub fn key_groups(&self) -> Range<KeyGroup> {
        self.backend.key_groups()
    }

    /// Registers a value state, or returns the handle of the one already registered as `name`.
    ///
    /// Fails with [`StateError::TypeMismatch`] if `name` is registered with another kind or
    /// other types.
    pub fn value_state<N: StateKey, V: StateData>(&mut self, name: &str) -> Result<ValueStateHandle<N, V>> {
        let factory = ValueFactory::<K, N, V>(PhantomData);
        let index = self.register::<(N, V), Box<dyn ValueTable<K, N, V>>>(name, &factory)?;
        Ok(ValueStateHandle { index, _types: PhantomData })
    }

    /// Registers a list state, or returns the handle of the one already registered as `name`.
    ///
    /// Fails with [`StateError::TypeMismatch`] if `name` is registered with another kind or
    /// other types.
    pub fn list_state<N: StateKey, V: StateData>(&mut self, name: &str) -> Result<ListStateHandle<N, V>> {
        let factory = ListFactory::<K, N, V>(PhantomData);
        let index = self.register::<(N, V), Box<dyn ListTable<K, N, V>>>(name, &factory)?;
        Ok(ListStateHandle { index, _types: PhantomData })
    }

    /// Registers a map state, or returns the handle of the one already registered as `name`.
    ///
    /// Fails with [`StateError::TypeMismatch`] if `name` is registered with another kind or
    /// other types.
    pub fn map_state<N: StateKey, UK: StateKey, UV: StateData>(
        &mut self,
        name: &str,
    ) -> Result<MapStateHandle<N, UK, UV>> {
        let factory = MapFactory::<K, N, UK, UV>(PhantomData);
        let index = self.register::<(N, UK, UV), Box<dyn MapTable<K, N, UK, UV>>>(name, &factory)?;
        Ok(MapStateHandle { index, _types: PhantomData })
    }

    /// The table of a value state.
    ///
    /// # Panics
    ///
    /// If `handle` comes from another store.
    #[inline]
    pub fn value<N: StateKey, V: StateData>(&mut self, handle: ValueStateHandle<N, V>) -> &mut dyn ValueTable<K, N, V> {
        &mut **self.table::<Box<dyn ValueTable<K, N, V>>>(handle.index)
    }

    /// The table of a list state.
    ///
    /// # Panics
    ///
    /// If `handle` comes from another store.
    #[inline]
    pub fn list<N: StateKey, V: StateData>(&mut self, handle: ListStateHandle<N, V>) -> &mut dyn ListTable<K, N, V> {
        &mut **self.table::<Box<dyn ListTable<K, N, V>>>(handle.index)
    }

    /// The table of a map state.
    ///
    /// # Panics
    ///
    /// If `handle` comes from another store.
    #[inline]
    pub fn map<N: StateKey, UK: StateKey, UV: StateData>(
        &mut self,
        handle: MapStateHandle<N, UK, UV>,
    ) -> &mut dyn MapTable<K, N, UK, UV> {
        &mut **self.table::<Box<dyn MapTable<K, N, UK, UV>>>(handle.index)
    }

    /// The registered states' names and kinds, in registration order.
    pub fn state_names(&self) -> Vec<(String, StateKind)> {
        self.states.iter().map(|s| (s.name.clone(), s.kind)).collect()
    }

    /// A snapshot of every registered state, with every non-empty key group this store covers.
    ///
    /// A state with no entries is still listed, with no key groups, so that a restore checks
    /// that it is registered.
    pub fn snapshot(&self) -> Result<KeyedSnapshot> {
        let key_groups = self.key_groups();
        let states = self
            .states
            .iter()
            .map(|s| snapshot_state(&s.name, s.kind, key_groups.clone(), |kg| (s.snapshot_key_group)(&*s.table, kg)))
            .collect::<Result<_>>()?;
        Ok(KeyedSnapshot { states })
    }

    /// Starts a canonical [`snapshot`](Self::snapshot): the synchronous part, to run between
    /// two records, freezes every table; [`PendingKeyedSnapshot::materialize`] then serializes
    /// the frozen tables off the processing loop into a [`KeyedStateHandle::Full`] with the bytes
    /// `snapshot` gives now, whatever is written meanwhile.
    ///
    /// Memory tables freeze in O(key groups); a write afterwards copies the entry it writes if
    /// the snapshot still holds its key group. If a table cannot freeze (the byte tables of
    /// RocksDB), the snapshot is taken here, synchronously.
    pub fn start_snapshot(&mut self) -> Result<PendingKeyedSnapshot> {
        let mut states = Vec::with_capacity(self.states.len());
        for state in &mut self.states {
            match (state.freeze)(&mut *state.table)? {
                Some(table) => states.push(FrozenState { name: state.name.clone(), kind: state.kind, table }),
                None => return Ok(PendingKeyedSnapshot::ready(KeyedStateHandle::Full(self.snapshot()?))),
            }
        }
        Ok(PendingKeyedSnapshot::frozen(FrozenStore { key_groups: self.key_groups(), states }))
    }

    /// Starts checkpoint `checkpoint`: the synchronous part, to run between two records. The
    /// result is materialized off the processing loop with
    /// [`PendingKeyedSnapshot::materialize`].
    ///
    /// A backend with a format of its own takes its own checkpoint (RocksDB: flushes its
    /// memtables and hard-links its files into a local directory); otherwise this is the
    /// canonical snapshot of [`start_snapshot`](Self::start_snapshot).
    pub fn checkpoint(&mut self, checkpoint: u64) -> Result<PendingKeyedSnapshot> {
        match self.backend.checkpoint(checkpoint)? {
            Some(pending) => Ok(pending),
            None => self.start_snapshot(),
        }
    }

    /// Checkpoint `checkpoint` completed everywhere: the backend may reference what it stored
    /// in later checkpoints.
    pub fn notify_checkpoint_complete(&mut self, checkpoint: u64) {
        self.backend.notify_checkpoint_complete(checkpoint);
    }

    /// Checkpoint `checkpoint` was aborted: the backend must not reference what it stored.
    pub fn notify_checkpoint_aborted(&mut self, checkpoint: u64) {
        self.backend.notify_checkpoint_aborted(checkpoint);
    }

    /// Adds the entries of `snapshot` in the key groups this store covers; the others are
    /// skipped, which is how a restore at another parallelism picks its share.
    ///
    /// Every state of `snapshot` must already be registered here under its name and kind (an
    /// operator registers its states when it opens, and restores right after): otherwise this
    /// fails with [`StateError::UnknownState`] or [`StateError::TypeMismatch`] before changing
    /// anything. A key group that cannot be decoded fails with [`StateError::Corrupt`] naming the
    /// state and key group; the store is then partly restored and should be dropped.
    pub fn restore(&mut self, snapshot: &KeyedSnapshot) -> Result<()> {
        let mut targets = Vec::with_capacity(snapshot.states.len());
        for state in &snapshot.states {
            let index = self
                .states
                .iter()
                .position(|s| s.name == state.name)
                .ok_or_else(|| StateError::UnknownState { name: state.name.clone() })?;
            if self.states[index].kind != state.kind {
                return Err(StateError::TypeMismatch { name: state.name.clone() });
            }
            targets.push(index);
        }
        let key_groups = self.key_groups();
        for (state, index) in snapshot.states.iter().zip(targets) {
            let target = &mut self.states[index];
            for (kg, bytes) in state.key_groups.iter().filter(|(kg, _)| key_groups.contains(kg)) {
                if let Err(e) = (target.restore_key_group)(&mut *target.table, *kg, bytes) {
                    return Err(locate(&target.name, *kg, e));
                }
            }
        }
        Ok(())
    }

    /// The index of the state `name`, registering it with the backend if it is new. `Types`
    /// identifies the state's types besides the store's key; `Table` is what the table must
    /// downcast to.
    fn register<Types: 'static, Table: CheckpointedTable>(
        &mut self,
        name: &str,
        factory: &dyn TableFactory,
    ) -> Result<usize> {
        let kind = factory.kind();
        let types = TypeId::of::<Types>();
        if let Some(index) = self.states.iter().position(|s| s.name == name) {
            let state = &self.states[index];
            return if state.kind == kind && state.types == types {
                Ok(index)
            } else {
                Err(StateError::TypeMismatch { name: name.to_owned() })
            };
        }
        let table = self.backend.create_table(name, factory)?;
        // Checked here so that a faulty backend fails at registration, not on the first record.
        if !table.is::<Table>() {
            return Err(StateError::Backend(format!(
                "backend {:?} created a table for state {name:?} that is not a {}",
                self.backend.name(),
                type_name::<Table>(),
            )));
        }
        self.states.push(RegisteredState {
            name: name.to_owned(),
            kind,
            types,
            table,
            snapshot_key_group: snapshot_erased::<Table>,
            restore_key_group: restore_erased::<Table>,
            freeze: freeze_erased::<Table>,
        });
        Ok(self.states.len() - 1)
    }

    #[inline]
    fn table<Table: 'static>(&mut self, index: usize) -> &mut Table {
        match self.states.get_mut(index).and_then(|s| s.table.downcast_mut::<Table>()) {
            Some(table) => table,
            None => foreign_handle(index, type_name::<Table>()),
        }
    }
}

#[cold]
#[track_caller]
fn foreign_handle(index: usize, table: &str) -> ! {
    panic!("state handle {index} does not belong to this keyed state store (expected a {table})")
}

/// A boxed table as the store keeps it, snapshotted, restored and frozen through
/// [`snapshot_erased`], [`restore_erased`] and [`freeze_erased`], which know its type.
trait CheckpointedTable: Send + 'static {
    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>>;
    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()>;
    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>>;
}

/// Implements [`CheckpointedTable`] for a boxed table trait by delegating to it.
macro_rules! checkpointed_table {
    ($table:ident<$($param:ident),+>) => {
        impl<$($param: 'static),+> CheckpointedTable for Box<dyn $table<$($param),+>> {
            fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
                (**self).snapshot_key_group(kg)
            }

            fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
                (**self).restore_key_group(kg, bytes)
            }

            fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
                (**self).freeze()
            }
        }
    };
}

checkpointed_table!(ValueTable<K, N, V>);
checkpointed_table!(ListTable<K, N, V>);
checkpointed_table!(MapTable<K, N, UK, UV>);

fn snapshot_erased<Table: CheckpointedTable>(table: &(dyn Any + Send), kg: KeyGroup) -> Result<Option<Vec<u8>>> {
    table.downcast_ref::<Table>().ok_or_else(not_the_registered_table::<Table>)?.snapshot_key_group(kg)
}

fn restore_erased<Table: CheckpointedTable>(table: &mut (dyn Any + Send), kg: KeyGroup, bytes: &[u8]) -> Result<()> {
    table.downcast_mut::<Table>().ok_or_else(not_the_registered_table::<Table>)?.restore_key_group(kg, bytes)
}

fn freeze_erased<Table: CheckpointedTable>(table: &mut (dyn Any + Send)) -> Result<Option<Box<dyn FrozenTable>>> {
    Ok(table.downcast_mut::<Table>().ok_or_else(not_the_registered_table::<Table>)?.freeze())
}

/// Every state of a store as [`KeyedStateStore::start_snapshot`] froze it, to serialize off the
/// processing loop.
pub(crate) struct FrozenStore {
    key_groups: Range<KeyGroup>,
    states: Vec<FrozenState>,
}

/// A state in a [`FrozenStore`].
struct FrozenState {
    name: String,
    kind: StateKind,
    table: Box<dyn FrozenTable>,
}

impl FrozenStore {
    /// The canonical snapshot of the frozen states: what [`KeyedStateStore::snapshot`] gave when
    /// they were frozen.
    pub(crate) fn snapshot(mut self) -> Result<KeyedSnapshot> {
        let key_groups = self.key_groups.clone();
        let states = self
            .states
            .iter_mut()
            .map(|s| snapshot_state(&s.name, s.kind, key_groups.clone(), |kg| s.table.take_key_group(kg)))
            .collect::<Result<_>>()?;
        Ok(KeyedSnapshot { states })
    }
}

impl fmt::Debug for FrozenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrozenStore")
            .field("key_groups", &self.key_groups)
            .field("states", &self.states.iter().map(|s| (&s.name, s.kind)).collect::<Vec<_>>())
            .finish()
    }
}

/// Unreachable, as `register` checked the table's type; an error rather than a panic all the same.
#[cold]
fn not_the_registered_table<Table>() -> StateError {
    StateError::Backend(format!("state table is not a {}", type_name::<Table>()))
}

/// Builds value tables of the given types.
struct ValueFactory<K, N, V>(Types<(K, N, V)>);

impl<K: StateKey, N: StateKey, V: StateData> TableFactory for ValueFactory<K, N, V> {
    fn kind(&self) -> StateKind {
        StateKind::Value
    }

    fn memory_table(&self, key_groups: Range<KeyGroup>) -> Box<dyn Any + Send> {
        let table: Box<dyn ValueTable<K, N, V>> = Box::new(MemoryValueTable::<K, N, V>::new(key_groups));
        Box::new(table)
    }

    fn byte_table(&self, key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Box<dyn Any + Send> {
        let table: Box<dyn ValueTable<K, N, V>> = Box::new(ByteValueTable::<K, N, V>::new(key_groups, raw));
        Box::new(table)
    }
}

/// Builds list tables of the given types.
struct ListFactory<K, N, V>(Types<(K, N, V)>);

impl<K: StateKey, N: StateKey, V: StateData> TableFactory for ListFactory<K, N, V> {
    fn kind(&self) -> StateKind {
        StateKind::List
    }

    fn memory_table(&self, key_groups: Range<KeyGroup>) -> Box<dyn Any + Send> {
        let table: Box<dyn ListTable<K, N, V>> = Box::new(MemoryListTable::<K, N, V>::new(key_groups));
        Box::new(table)
    }

    fn byte_table(&self, key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Box<dyn Any + Send> {
        let table: Box<dyn ListTable<K, N, V>> = Box::new(ByteListTable::<K, N, V>::new(key_groups, raw));
        Box::new(table)
    }
}

/// Builds map tables of the given types.
struct MapFactory<K, N, UK, UV>(Types<(K, N, UK, UV)>);

impl<K: StateKey, N: StateKey, UK: StateKey, UV: StateData> TableFactory for MapFactory<K, N, UK, UV> {
    fn kind(&self) -> StateKind {
        StateKind::Map
    }

    fn memory_table(&self, key_groups: Range<KeyGroup>) -> Box<dyn Any + Send> {
        let table: Box<dyn MapTable<K, N, UK, UV>> = Box::new(MemoryMapTable::<K, N, UK, UV>::new(key_groups));
        Box::new(table)
    }

    fn byte_table(&self, key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Box<dyn Any + Send> {
        let table: Box<dyn MapTable<K, N, UK, UV>> = Box::new(ByteMapTable::<K, N, UK, UV>::new(key_groups, raw));
        Box::new(table)
    }
}

/// Defines a state handle: an index into its store, `Copy` and comparable whatever its type
/// parameters (hence the manual impls instead of derives, which would bound them).
macro_rules! state_handle {
    ($(#[$doc:meta])* $name:ident<$($param:ident),+>) => {
        $(#[$doc])*
        pub struct $name<$($param),+> {
            index: usize,
            _types: Types<($($param,)+)>,
        }

        impl<$($param),+> Clone for $name<$($param),+> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<$($param),+> Copy for $name<$($param),+> {}

        impl<$($param),+> PartialEq for $name<$($param),+> {
            fn eq(&self, other: &Self) -> bool {
                self.index == other.index
            }
        }

        impl<$($param),+> Eq for $name<$($param),+> {}

        impl<$($param),+> fmt::Debug for $name<$($param),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.index).finish()
            }
        }
    };
}

state_handle! {
    /// A value state of a [`KeyedStateStore`]: one `V` per key and namespace `N`.
    ValueStateHandle<N, V>
}

state_handle! {
    /// A list state of a [`KeyedStateStore`]: a list of `V` per key and namespace `N`.
    ListStateHandle<N, V>
}

state_handle! {
    /// A map state of a [`KeyedStateStore`]: a map from `UK` to `UV` per key and namespace `N`.
    MapStateHandle<N, UK, UV>
}
