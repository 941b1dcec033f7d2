//! The runtime of async natives: one thread polls every task (an `async fn` native's
//! future, as its crate boxed it) when its waker says it can go on, so that any number of
//! them wait at once without a thread each. A task is polled with a host of its call (its
//! body may send, emit, use resources); its reply goes to its caller through the server;
//! a task whose caller gave up is dropped, and so cancelled, at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use rustelixir_nif::task::{AsyncTask, CWaker};

use crate::server::Server;

/// A task of a call in flight.
pub struct Task {
    pub task: AsyncTask,
    pub caller: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
    pub cancel: Arc<AtomicBool>,
}

impl Task {
    /// The crate's task, handed back: no longer the runtime's to drop (a task the runtime
    /// could not take stays its crate's).
    pub fn give_back(self) -> AsyncTask {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: each field read out once from a value that is never dropped.
        unsafe {
            drop((std::ptr::read(&this.caller), std::ptr::read(&this.tag), std::ptr::read(&this.cancel)));
            std::ptr::read(&this.task)
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: the task's own drop, once, in the crate that made it.
        unsafe { (self.task.drop)(self.task.task) }
    }
}

#[derive(Default)]
struct State {
    tasks: HashMap<u64, Task>,
    /// Tickets to poll, in order, each once.
    ready: VecDeque<u64>,
    queued: HashSet<u64>,
    started: bool,
    closed: bool,
    /// The task being polled (out of `tasks` meanwhile), and whether it was woken since.
    polling: Option<u64>,
    woken_while_polling: bool,
}

#[derive(Default)]
pub struct Runtime {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    woken: Condvar,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn wake(&self, ticket: u64) {
        let mut state = lock(&self.state);
        if state.polling == Some(ticket) {
            state.woken_while_polling = true;
        } else if state.tasks.contains_key(&ticket) && state.queued.insert(ticket) {
            state.ready.push_back(ticket);
            self.woken.notify_one();
        }
    }
}

impl Runtime {
    /// Takes `task` for call `ticket` and polls it soon; the polling thread starts with the
    /// first task. Gives it back when the runtime is closed or has no thread.
    pub fn spawn(&self, server: &Arc<Server>, ticket: u64, task: Task) -> Result<(), Task> {
        let mut state = lock(&self.inner.state);
        if state.closed {
            return Err(task);
        }
        if !state.started {
            let (inner, weak) = (self.inner.clone(), Arc::downgrade(server));
            let started = std::thread::Builder::new().name("rustelixir-async".into()).spawn(move || run(inner, weak));
            if started.is_err() {
                return Err(task);
            }
            state.started = true;
        }
        let replaced = state.tasks.insert(ticket, task);
        if state.queued.insert(ticket) {
            state.ready.push_back(ticket);
        }
        self.inner.woken.notify_one();
        drop(state);
        drop(replaced); // (never: one task per call; dropped outside the lock all the same)
        Ok(())
    }

    /// The caller of call `ticket` gave up: its task, if it is not being polled now, is
    /// dropped here (one being polled is dropped right after, its flag being set). True
    /// when it was dropped here.
    pub fn cancel(&self, ticket: u64) -> bool {
        let task = lock(&self.inner.state).tasks.remove(&ticket);
        task.is_some() // dropped: the future with it
    }

    /// Drops every task and stops the polling thread.
    pub fn close(&self) {
        let tasks = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            self.inner.woken.notify_all();
            std::mem::take(&mut state.tasks)
        };
        drop(tasks);
    }
}

/// The polling thread: should a poll or a reply panic (a bug of ours; the crate's panics
/// are caught in its own poll), it goes on with the next task, the one at fault dropped.
fn run(inner: Arc<Inner>, server: Weak<Server>) {
    while std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_tasks(&inner, &server))).is_err() {
        lock(&inner.state).polling = None;
    }
}

fn run_tasks(inner: &Arc<Inner>, server: &Weak<Server>) {
    loop {
        let (ticket, task) = {
            let mut state = lock(&inner.state);
            loop {
                if state.closed {
                    return;
                }
                if let Some(ticket) = state.ready.pop_front() {
                    state.queued.remove(&ticket);
                    if let Some(task) = state.tasks.remove(&ticket) {
                        state.polling = Some(ticket);
                        state.woken_while_polling = false;
                        break (ticket, task);
                    }
                    continue; // done or cancelled since it was woken
                }
                state = inner.woken.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(server) = server.upgrade() else { return };
        if task.cancel.load(Ordering::Relaxed) {
            drop(task);
            server.complete(ticket, None);
            continue;
        }
        let waker = c_waker(Arc::new(Wake { inner: Arc::downgrade(inner), ticket }));
        let reply = poll_once(&task.task, &waker, |poll| server.poll_task(&task, |host| poll(host)));
        let done = reply.is_some();
        // SAFETY: the handle made above, let go once.
        unsafe { (waker.drop)(waker.data) };
        let mut state = lock(&inner.state);
        state.polling = None;
        if done || task.cancel.load(Ordering::Relaxed) || state.closed {
            drop(state);
            drop(task);
            server.complete(ticket, if done { reply } else { None });
        } else {
            if std::mem::take(&mut state.woken_while_polling) && state.queued.insert(ticket) {
                state.ready.push_back(ticket);
            }
            state.tasks.insert(ticket, task);
        }
    }
}

/// What the node's waker of a task points to.
struct Wake {
    inner: Weak<Inner>,
    ticket: u64,
}

/// Something a C waker wakes.
trait Wakes: Send + Sync {
    fn wake(&self);
}

impl Wakes for Wake {
    fn wake(&self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.wake(self.ticket);
        }
    }
}

/// A C waker over a counted `W` (one count per handle).
fn c_waker<W: Wakes>(w: Arc<W>) -> CWaker {
    unsafe extern "C" fn clone<W: Wakes>(data: *const c_void) -> *const c_void {
        Arc::increment_strong_count(data as *const W);
        data
    }
    unsafe extern "C" fn wake<W: Wakes>(data: *const c_void) {
        Arc::from_raw(data as *const W).wake();
    }
    unsafe extern "C" fn wake_by_ref<W: Wakes>(data: *const c_void) {
        (*(data as *const W)).wake();
    }
    unsafe extern "C" fn drop<W: Wakes>(data: *const c_void) {
        std::mem::drop(Arc::from_raw(data as *const W));
    }
    CWaker { data: Arc::into_raw(w) as *const c_void, clone: clone::<W>, wake: wake::<W>, wake_by_ref: wake_by_ref::<W>, drop: drop::<W> }
}

/// Polls `task` once, `with_host` giving the poll a host: its reply when it is done.
fn poll_once(task: &AsyncTask, waker: &CWaker, with_host: impl FnOnce(&mut dyn FnMut(&rustelixir_nif::Host) -> bool) -> bool) -> Option<Vec<u8>> {
    let mut reply: Option<Vec<u8>> = None;
    extern "C" fn write(out: *mut c_void, ptr: *const u8, len: usize) {
        // SAFETY: `out` is `reply` above; the bytes live for the call.
        let reply = unsafe { &mut *(out as *mut Option<Vec<u8>>) };
        *reply = Some(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec());
    }
    let out = &mut reply as *mut Option<Vec<u8>> as *mut c_void;
    // SAFETY: the task's own poll, with a host of its call and a waker that lives through
    // the poll (the crate clones what it keeps).
    let done = with_host(&mut |host| unsafe { (task.poll)(task.task, host, waker, out, write) == 1 });
    if done {
        reply
    } else {
        None
    }
}

struct Parker(std::thread::Thread);

impl Wakes for Parker {
    fn wake(&self) {
        self.0.unpark();
    }
}

/// Runs `task` to its end on this thread, each poll with a host of `resources` (for a
/// crate's own tests of its async natives, with no node): its reply.
pub fn block_on(task: AsyncTask, resources: &rustelixir_nif::ResourceTable) -> Vec<u8> {
    struct Owned(AsyncTask);
    impl Drop for Owned {
        fn drop(&mut self) {
            // SAFETY: the task's own drop, once.
            unsafe { (self.0.drop)(self.0.task) }
        }
    }
    let task = Owned(task);
    let waker = c_waker(Arc::new(Parker(std::thread::current())));
    let reply = loop {
        let polled = poll_once(&task.0, &waker, |poll| resources.with_host(&rustelixir_nif::CallInfo::default(), |h| poll(h)).0);
        if let Some(reply) = polled {
            break reply;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    };
    // SAFETY: the handle made above, let go once.
    unsafe { (waker.drop)(waker.data) };
    reply
}
