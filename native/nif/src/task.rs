//! Async natives: an `async fn` declared with `#[native]` becomes a task the node polls on
//! a runtime of its own (one thread for all of them), so that many wait at once without a
//! thread each; the task is dropped, and so cancelled, when its caller gives up.
//!
//! Across the C ABI a task is its crate's boxed future behind [`AsyncTask`]'s functions,
//! and the node's waker a [`CWaker`]: each side's code runs only its own types.
//! [`sleep`] is a timer that needs no runtime (one timer thread per crate).

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use crate::host::{self, Host};
use crate::{panic_message, write_panic};

/// The node's waker, for one task: `clone` gives another handle, `wake` consumes one,
/// `wake_by_ref` does not, `drop` lets one go.
#[repr(C)]
pub struct CWaker {
    pub data: *const c_void,
    pub clone: unsafe extern "C" fn(*const c_void) -> *const c_void,
    pub wake: unsafe extern "C" fn(*const c_void),
    pub wake_by_ref: unsafe extern "C" fn(*const c_void),
    pub drop: unsafe extern "C" fn(*const c_void),
}

/// An async native's task, as its crate hands it to the node (`Host::spawn`).
#[repr(C)]
pub struct AsyncTask {
    pub task: *mut c_void,
    /// Polls the task once, with `host` as the crate's current host (so messages and
    /// resources work in the native's body): 1 when it is done, its reply written through
    /// `write(out, ptr, len)`; 0 when it is not (it wakes `waker` when it can go on). Never
    /// unwinds.
    pub poll: unsafe extern "C" fn(
        task: *mut c_void,
        host: *const Host,
        waker: *const CWaker,
        out: *mut c_void,
        write: extern "C" fn(*mut c_void, *const u8, usize),
    ) -> i32,
    /// Drops the task (done, or its caller gave up), in the crate that made it.
    pub drop: unsafe extern "C" fn(task: *mut c_void),
}

// The future inside is Send; the functions are plain code.
unsafe impl Send for AsyncTask {}

/// What the crate boxes: the future of the native's reply term.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

impl AsyncTask {
    /// `future` as a task of this copy of the crate.
    pub fn new(future: ReplyFuture) -> Self {
        AsyncTask { task: Box::into_raw(Box::new(future)) as *mut c_void, poll: poll_task, drop: drop_task }
    }
}

unsafe extern "C" fn poll_task(
    task: *mut c_void,
    host: *const Host,
    waker: *const CWaker,
    out: *mut c_void,
    write: extern "C" fn(*mut c_void, *const u8, usize),
) -> i32 {
    let future = &mut *(task as *mut ReplyFuture);
    let waker = waker_of(&*waker);
    let mut cx = Context::from_waker(&waker);
    let polled = host::with_current(host, || catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))));
    let reply = match polled {
        Ok(Poll::Pending) => return 0,
        Ok(Poll::Ready(reply)) => reply,
        Err(panic) => {
            let mut out = Vec::new();
            write_panic(&mut out, &panic_message(&*panic));
            out
        }
    };
    write(out, reply.as_ptr(), reply.len());
    1
}

unsafe extern "C" fn drop_task(task: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(task as *mut ReplyFuture))));
}

// --- The node's waker as a std Waker (this crate's side) -------------------------------------

/// A std `Waker` over a clone of the node's waker (the one given to `poll` lives only for
/// the poll).
unsafe fn waker_of(node: &CWaker) -> Waker {
    Waker::from_raw(clone_raw(node as *const CWaker as *const ()))
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

/// An owned copy of the node's waker at `data` (a handle of its own, from its `clone`).
unsafe fn clone_raw(data: *const ()) -> RawWaker {
    let node = &*(data as *const CWaker);
    let owned = Box::new(CWaker {
        data: (node.clone)(node.data),
        clone: node.clone,
        wake: node.wake,
        wake_by_ref: node.wake_by_ref,
        drop: node.drop,
    });
    RawWaker::new(Box::into_raw(owned) as *const (), &VTABLE)
}

unsafe fn wake_raw(data: *const ()) {
    let node = Box::from_raw(data as *mut CWaker);
    (node.wake)(node.data);
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    let node = &*(data as *const CWaker);
    (node.wake_by_ref)(node.data);
}

unsafe fn drop_raw(data: *const ()) {
    let node = Box::from_raw(data as *mut CWaker);
    (node.drop)(node.data);
}

// --- A timer that needs no runtime ------------------------------------------------------------

/// Completes after `duration`, whatever polls it (the node's runtime, another executor):
/// one timer thread per crate wakes every sleeper when its time comes.
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    // Far enough: a century stands for "never" (Instant cannot hold every Duration).
    let at = now.checked_add(duration).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
    Sleep { at, id: None }
}

pub struct Sleep {
    at: Instant,
    id: Option<u64>,
}

/// Sleepers by (due time, id): a dropped one leaves nothing behind.
#[derive(Default)]
struct Timers {
    next: u64,
    due: BTreeMap<(Instant, u64), Waker>,
}

fn lock(timers: &Mutex<Timers>) -> std::sync::MutexGuard<'_, Timers> {
    timers.lock().unwrap_or_else(|e| e.into_inner())
}

fn timers() -> &'static (Mutex<Timers>, Condvar) {
    static TIMERS: OnceLock<Arc<(Mutex<Timers>, Condvar)>> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let shared = Arc::new((Mutex::new(Timers::default()), Condvar::new()));
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("rustelixir-timers".into())
            .spawn(move || loop {
                let (timers, changed) = &*worker;
                let mut t = lock(timers);
                let now = Instant::now();
                let later = t.due.split_off(&(now, u64::MAX));
                let woken = std::mem::replace(&mut t.due, later);
                let wait = t.due.keys().next().map(|(at, _)| at.saturating_duration_since(now));
                if woken.is_empty() {
                    drop(match wait {
                        Some(wait) => changed.wait_timeout(t, wait).unwrap_or_else(|e| e.into_inner()).0,
                        None => changed.wait(t).unwrap_or_else(|e| e.into_inner()),
                    });
                } else {
                    drop(t);
                    // Woken outside the lock: a waker may run code that sleeps again.
                    woken.into_values().for_each(Waker::wake);
                }
            })
            .expect("a timer thread");
        shared
    })
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let (timers, changed) = timers();
        let mut t = lock(timers);
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = t.next;
                t.next += 1;
                self.id = Some(id);
                changed.notify_one();
                id
            }
        };
        // (Taken out when it was woken: put back until its time has come.)
        t.due.insert((self.at, id), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(&timers().0).due.remove(&(self.at, id));
        }
    }
}
