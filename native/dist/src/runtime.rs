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
    /// first task.
    pub fn spawn(&self, server: &Arc<Server>, ticket: u64, task: Task) {
        let start = {
            let mut state = lock(&self.inner.state);
            state.tasks.insert(ticket, task);
            state.queued.insert(ticket);
            state.ready.push_back(ticket);
            self.inner.woken.notify_one();
            !std::mem::replace(&mut state.started, true)
        };
        if start {
            let (inner, server) = (self.inner.clone(), Arc::downgrade(server));
            std::thread::Builder::new()
                .name("rustelixir-async".into())
                .spawn(move || run(inner, server))
                .expect("the async natives' thread");
        }
    }

    /// The caller of call `ticket` gave up: its task, if it is not being polled now, is
    /// dropped here (one being polled is dropped right after, its flag being set). True
    /// when it was dropped here.
    pub fn cancel(&self, ticket: u64) -> bool {
        let task = lock(&self.inner.state).tasks.remove(&ticket);
        task.is_some() // dropped: the future with it
    }

    /// Tasks not done yet.
    pub fn len(&self) -> usize {
        lock(&self.inner.state).tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

fn run(inner: Arc<Inner>, server: Weak<Server>) {
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
        let waker = Arc::new(Wake { inner: Arc::downgrade(&inner), ticket });
        let c_waker = CWaker { data: Arc::into_raw(waker) as *const c_void, clone: waker_clone, wake: waker_wake, wake_by_ref: waker_wake_by_ref, drop: waker_drop };
        let mut reply: Option<Vec<u8>> = None;
        extern "C" fn write(out: *mut c_void, ptr: *const u8, len: usize) {
            // SAFETY: `out` is `reply` below; the bytes live for the call.
            let reply = unsafe { &mut *(out as *mut Option<Vec<u8>>) };
            *reply = Some(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec());
        }
        let done = server.poll_task(&task, |host| {
            // SAFETY: the task's own poll, with a host of its call and a waker that lives
            // through the poll (the crate clones what it keeps).
            unsafe { (task.task.poll)(task.task.task, host, &c_waker, &mut reply as *mut Option<Vec<u8>> as *mut c_void, write) == 1 }
        });
        // SAFETY: the handle made above, let go once.
        unsafe { waker_drop(c_waker.data) };
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

unsafe extern "C" fn waker_clone(data: *const c_void) -> *const c_void {
    Arc::increment_strong_count(data as *const Wake);
    data
}

unsafe extern "C" fn waker_wake(data: *const c_void) {
    waker_wake_by_ref(data);
    waker_drop(data);
}

unsafe extern "C" fn waker_wake_by_ref(data: *const c_void) {
    let wake = &*(data as *const Wake);
    if let Some(inner) = wake.inner.upgrade() {
        inner.wake(wake.ticket);
    }
}

unsafe extern "C" fn waker_drop(data: *const c_void) {
    drop(Arc::from_raw(data as *const Wake));
}
