//! What super producers and super consumers share: the partitions of a super stream as the
//! broker last listed them, one slot per partition holding its producer or consumer, and the
//! open or closed state of the whole.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::environment::Environment;
use super::error::{ClientError, Result};
use super::super_producer::EnvironmentHandle;
use crate::protocol::codes::ResponseCode;

pub(super) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// A partition as its producer's or consumer's events see it.
pub(super) struct PartitionId {
    pub(super) stream: String,
    /// Position in the current partition list.
    index: AtomicUsize,
}

impl PartitionId {
    pub(super) fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed)
    }
}

/// One partition and its producer or consumer (`C`), plus what the kind keeps per partition
/// (`X`).
pub(super) struct Slot<C, X> {
    pub(super) id: Arc<PartitionId>,
    /// `None` before the first successful creation, or once taken.
    pub(super) client: RwLock<Option<Arc<C>>>,
    pub(super) ext: X,
}

impl<C, X> Slot<C, X> {
    pub(super) fn new(stream: &str, index: usize, ext: X) -> Arc<Self> {
        Arc::new(Slot {
            id: Arc::new(PartitionId {
                stream: stream.to_string(),
                index: AtomicUsize::new(index),
            }),
            client: RwLock::new(None),
            ext,
        })
    }

    pub(super) fn client(&self) -> Option<Arc<C>> {
        read(&self.client).clone()
    }

    pub(super) fn set(&self, c: Arc<C>) {
        *write(&self.client) = Some(c);
    }

    pub(super) fn take(&self) -> Option<Arc<C>> {
        write(&self.client).take()
    }
}

/// The partitions as of the last Partitions answer, their slots in the same order, and what
/// the kind derives from that order (`R`).
pub(super) struct Topology<C, X, R> {
    pub(super) partitions: Vec<String>,
    pub(super) slots: Vec<Arc<Slot<C, X>>>,
    pub(super) ext: R,
}

/// The slots of a topology (the order of the partitions).
pub(super) type Slots<C, X> = Vec<Arc<Slot<C, X>>>;

/// A super stream's partitions and their producers or consumers.
pub(super) struct Partitioned<C, X, R> {
    pub(super) env: Arc<dyn EnvironmentHandle>,
    pub(super) super_stream: String,
    topology: RwLock<Arc<Topology<C, X, R>>>,
    /// One refresh (or close) at a time.
    pub(super) refreshing: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// "producer" or "consumer", for errors.
    noun: &'static str,
}

impl<C, X, R> Partitioned<C, X, R> {
    /// Asks the broker for the partitions of `super_stream`, as [`Self::new`] then.
    pub(super) async fn open(
        env: Arc<dyn EnvironmentHandle>,
        super_stream: &str,
        noun: &'static str,
        ext: impl Fn(usize) -> X,
        derived: R,
    ) -> Result<Self> {
        let partitions = fetch_partitions(environment_of(&*env)?, super_stream).await?;
        Ok(Self::new(env, super_stream, noun, partitions, ext, derived))
    }

    /// `partitions` with a slot each, made with `ext(partition index)`.
    pub(super) fn new(
        env: Arc<dyn EnvironmentHandle>,
        super_stream: &str,
        noun: &'static str,
        partitions: Vec<String>,
        ext: impl Fn(usize) -> X,
        derived: R,
    ) -> Self {
        let slots = partitions
            .iter()
            .enumerate()
            .map(|(i, p)| Slot::new(p, i, ext(i)))
            .collect();
        Partitioned {
            env,
            super_stream: super_stream.to_string(),
            topology: RwLock::new(Arc::new(Topology {
                partitions,
                slots,
                ext: derived,
            })),
            refreshing: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            noun,
        }
    }

    pub(super) fn topology(&self) -> Arc<Topology<C, X, R>> {
        read(&self.topology).clone()
    }

    pub(super) fn set_topology(&self, partitions: Vec<String>, slots: Slots<C, X>, derived: R) {
        *write(&self.topology) = Arc::new(Topology {
            partitions,
            slots,
            ext: derived,
        });
    }

    pub(super) fn environment(&self) -> Result<&Environment> {
        environment_of(&*self.env)
    }

    pub(super) fn closed_error(&self) -> ClientError {
        ClientError::Closed(format!(
            "the {} of super stream {} is closed",
            self.noun, self.super_stream
        ))
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(self.closed_error())
        } else {
            Ok(())
        }
    }

    /// Marks the whole closed; whether it already was.
    pub(super) fn set_closed(&self) -> bool {
        self.closed.swap(true, Ordering::SeqCst)
    }

    /// For a refresh: the partitions the broker lists now, their slots (the slot of a
    /// partition still listed, its index updated, else a new one with `ext`), and the slots
    /// of the partitions no longer listed.
    pub(super) async fn relist(
        &self,
        ext: impl Fn(usize) -> X,
    ) -> Result<(Vec<String>, Slots<C, X>, Slots<C, X>)> {
        let partitions = fetch_partitions(self.environment()?, &self.super_stream).await?;
        let old = self.topology();
        let mut slots = Vec::with_capacity(partitions.len());
        for (i, name) in partitions.iter().enumerate() {
            let slot = match old.slots.iter().find(|sl| &sl.id.stream == name) {
                Some(sl) => {
                    sl.id.index.store(i, Ordering::Relaxed);
                    sl.clone()
                }
                None => Slot::new(name, i, ext(i)),
            };
            slots.push(slot);
        }
        let removed = old
            .slots
            .iter()
            .filter(|sl| !partitions.contains(&sl.id.stream))
            .cloned()
            .collect();
        Ok((partitions, slots, removed))
    }
}

/// The environment `env` gives, or [`ClientError::Closed`] once it is gone.
fn environment_of(env: &dyn EnvironmentHandle) -> Result<&Environment> {
    env.environment()
        .ok_or_else(|| ClientError::Closed("the environment is closed".into()))
}

/// Waits for every close in `closing`; the first error among them.
pub(super) async fn first_error(closing: Vec<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    let mut result = Ok(());
    for c in closing {
        if let Ok(Err(e)) = c.await {
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

/// The partitions of `super_stream`, as the broker lists them, at least one. A name that is
/// a plain stream is refused as "not a super stream" (the broker answers Partitions for it
/// as for a name that does not exist, which would mislead).
pub(crate) async fn fetch_partitions(env: &Environment, super_stream: &str) -> Result<Vec<String>> {
    let partitions = match env.partitions(super_stream).await {
        Err(ClientError::Server {
            code: ResponseCode::STREAM_DOES_NOT_EXIST,
            operation,
        }) => {
            if env.stream_exists(super_stream).await? {
                return Err(ClientError::InvalidArgument(format!(
                    "not a super stream: {super_stream} is a plain stream (use a producer or \
                     consumer for it, or give the name of a super stream)"
                )));
            }
            return Err(ClientError::Server {
                code: ResponseCode::STREAM_DOES_NOT_EXIST,
                operation,
            });
        }
        r => r?,
    };
    if partitions.is_empty() {
        return Err(ClientError::InvalidArgument(format!(
            "super stream {super_stream} has no partition"
        )));
    }
    Ok(partitions)
}
