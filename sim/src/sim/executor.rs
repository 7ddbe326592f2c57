//! The simulator's executor: the broker's async code (`kafdo_broker`) run as tasks that only
//! the event loop polls, and the broker's [`Runtime`] over the simulated network.
//!
//! # Tasks
//!
//! A task is a future with an [`Owner`]: a Worker isolate (a request the simulated Worker
//! serves) or an object (a coordinator's call to another object). Killing an owner drops its
//! tasks, as an isolate reset drops every promise in it. A task is polled when it is spawned
//! and whenever its waker fires; the only wakers that fire are those of object calls, and they
//! fire only when the event loop resolves a call: an answer delivered, or the call's deadline
//! (an event too). So tasks advance only inside events, in an order the seed fixes.
//!
//! # Calls
//!
//! [`SimRuntime::call`] registers a slot and queues the call in the outbox; the event loop
//! takes it from there ([`Executor::take_outbox`]), sends it through the faulty network, and
//! schedules its deadline. The call's future is pending until [`Executor::resolve`] fills its
//! slot (the first of the answer and the deadline wins; later ones are ignored). A future
//! dropped with its task removes its slot, so a late answer finds nothing to wake.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use kafdo_broker::Runtime;
use kafdo_types::rpc::{Object, ObjectCall};
use kafdo_types::ApiError;

use crate::rng::Rng;

/// Who a task belongs to: killing the owner drops the task.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// A Worker isolate (by number).
    Isolate(u32),
    /// An object (a coordinator's calls).
    Object(Object),
}

/// A task's id.
pub type TaskId = u64;

/// A call's id: names its slot.
pub type SlotId = u64;

/// A call the event loop must send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Its slot.
    pub slot: SlotId,
    /// Where to.
    pub object: Object,
    /// What.
    pub call: ObjectCall,
    /// Its deadline, from now.
    pub timeout_ms: u32,
}

/// The answer to one call, and the task waiting for it.
#[derive(Default)]
struct Slot {
    answer: Option<Result<Vec<u8>, ApiError>>,
    waker: Option<Waker>,
}

/// What the tasks share with the event loop.
struct Shared {
    now_ms: Cell<i64>,
    rng: RefCell<Rng>,
    next_slot: Cell<SlotId>,
    slots: RefCell<BTreeMap<SlotId, Slot>>,
    outbox: RefCell<Vec<Outgoing>>,
}

/// The broker's runtime in the simulator: calls through the simulated network, the logical
/// clock, the seeded generator.
#[derive(Clone)]
pub struct SimRuntime {
    shared: Rc<Shared>,
}

impl Runtime for SimRuntime {
    fn call(
        &self,
        object: Object,
        call: ObjectCall,
        timeout_ms: u32,
    ) -> impl Future<Output = Result<Vec<u8>, ApiError>> {
        let slot = self.shared.next_slot.get();
        self.shared.next_slot.set(slot + 1);
        self.shared.slots.borrow_mut().insert(slot, Slot::default());
        self.shared.outbox.borrow_mut().push(Outgoing {
            slot,
            object,
            call,
            timeout_ms,
        });
        PendingCall {
            shared: Rc::clone(&self.shared),
            slot,
        }
    }

    fn now_ms(&self) -> i64 {
        self.shared.now_ms.get()
    }

    fn random_below(&self, n: u32) -> u32 {
        self.shared.rng.borrow_mut().below(u64::from(n)) as u32
    }
}

/// A call's future: ready once its slot holds an answer.
struct PendingCall {
    shared: Rc<Shared>,
    slot: SlotId,
}

impl Future for PendingCall {
    type Output = Result<Vec<u8>, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slots = self.shared.slots.borrow_mut();
        let slot = slots
            .get_mut(&self.slot)
            .expect("a pending call has its slot");
        match slot.answer.take() {
            Some(answer) => {
                slots.remove(&self.slot);
                Poll::Ready(answer)
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.shared.slots.borrow_mut().remove(&self.slot);
    }
}

/// Wakes a task by queueing its id (std's wakers must be `Send`: a mutex nobody contends).
struct TaskWaker {
    task: TaskId,
    ready: Arc<Mutex<VecDeque<TaskId>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready
            .lock()
            .expect("never poisoned")
            .push_back(self.task);
    }
}

type BoxedTask<T> = Pin<Box<dyn Future<Output = T>>>;

/// The tasks, their owners, and the queue of tasks to poll.
pub struct Executor<T> {
    shared: Rc<Shared>,
    tasks: BTreeMap<TaskId, (Owner, BoxedTask<T>)>,
    next_task: TaskId,
    ready: Arc<Mutex<VecDeque<TaskId>>>,
}

impl<T> Executor<T> {
    /// An executor whose runtime draws from `rng`.
    pub fn new(rng: Rng) -> Self {
        Self {
            shared: Rc::new(Shared {
                now_ms: Cell::new(0),
                rng: RefCell::new(rng),
                next_slot: Cell::new(1),
                slots: RefCell::new(BTreeMap::new()),
                outbox: RefCell::new(Vec::new()),
            }),
            tasks: BTreeMap::new(),
            next_task: 1,
            ready: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The runtime tasks call objects through.
    pub fn runtime(&self) -> SimRuntime {
        SimRuntime {
            shared: Rc::clone(&self.shared),
        }
    }

    /// Moves the runtime's clock.
    pub fn set_now(&self, now_ms: i64) {
        self.shared.now_ms.set(now_ms);
    }

    /// Adds a task; it is polled at the next [`Executor::poll_ready`].
    pub fn spawn(&mut self, owner: Owner, task: impl Future<Output = T> + 'static) {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.insert(id, (owner, Box::pin(task)));
        self.ready.lock().expect("never poisoned").push_back(id);
    }

    /// Drops every task of `owner`: their calls' slots go with them. Returns how many.
    pub fn kill(&mut self, owner: &Owner) -> usize {
        let before = self.tasks.len();
        self.tasks.retain(|_, (o, _)| o != owner);
        before - self.tasks.len()
    }

    /// The owners of live tasks.
    pub fn owners(&self) -> Vec<Owner> {
        let mut owners: Vec<Owner> = self.tasks.values().map(|(o, _)| o.clone()).collect();
        owners.dedup();
        owners
    }

    /// Gives a call its answer (or its deadline's error) and wakes its task. A call whose task
    /// died, or that was answered already, ignores it.
    pub fn resolve(&self, slot: SlotId, answer: Result<Vec<u8>, ApiError>) {
        let waker = {
            let mut slots = self.shared.slots.borrow_mut();
            let Some(s) = slots.get_mut(&slot) else {
                return;
            };
            if s.answer.is_some() {
                return;
            }
            s.answer = Some(answer);
            s.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the call still waits for its answer.
    pub fn is_pending(&self, slot: SlotId) -> bool {
        self.shared
            .slots
            .borrow()
            .get(&slot)
            .is_some_and(|s| s.answer.is_none())
    }

    /// The calls tasks made since the last time, in order.
    pub fn take_outbox(&self) -> Vec<Outgoing> {
        std::mem::take(&mut *self.shared.outbox.borrow_mut())
    }

    /// Polls every task that is ready, in the order they became ready, until none is; the
    /// outputs of those that finished, with their owners.
    pub fn poll_ready(&mut self) -> Vec<(Owner, T)> {
        let mut finished = Vec::new();
        loop {
            let next = self.ready.lock().expect("never poisoned").pop_front();
            let Some(id) = next else {
                return finished;
            };
            // A wake-up for a task that finished or was killed.
            let Some((owner, mut task)) = self.tasks.remove(&id) else {
                continue;
            };
            let waker = Waker::from(Arc::new(TaskWaker {
                task: id,
                ready: Arc::clone(&self.ready),
            }));
            match task.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(output) => finished.push((owner, output)),
                Poll::Pending => {
                    self.tasks.insert(id, (owner, task));
                }
            }
        }
    }
}
