//! The server's worker pool: slow natives run here, from their arguments' bytes, so that
//! neither a connection's thread nor Python waits on them. Threads are started as work
//! comes, up to the pool's size, and stay for the next.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Task = Box<dyn FnOnce() + Send>;

/// How long an idle worker looks for work before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

fn queued(queue: &Mutex<Queue>) -> bool {
    match queue.try_lock() {
        Ok(q) => !q.tasks.is_empty() || q.closed,
        Err(_) => false,
    }
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<Task>,
    idle: usize,
    threads: usize,
    closed: bool,
}

pub struct Pool {
    size: usize,
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

impl Pool {
    pub fn new(size: usize) -> Self {
        Pool { size: size.max(1), shared: Arc::default() }
    }

    pub fn run(&self, task: impl FnOnce() + Send + 'static) {
        let (queue, ready) = &*self.shared;
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            return;
        }
        q.tasks.push_back(Box::new(task));
        // Every idle thread takes one queued task: start one more only for a task none will take.
        if q.tasks.len() > q.idle && q.threads < self.size {
            let shared = self.shared.clone();
            let started = std::thread::Builder::new().name("natives-pool".into()).spawn(move || work(shared));
            if started.is_ok() {
                q.threads += 1;
            }
        }
        ready.notify_one();
    }

    /// Lets the threads end once the queue is empty.
    pub fn close(&self) {
        let (queue, ready) = &*self.shared;
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        q.tasks.clear();
        ready.notify_all();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

fn work(shared: Arc<(Mutex<Queue>, Condvar)>) {
    let (queue, ready) = &*shared;
    loop {
        let task = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(task) = q.tasks.pop_front() {
                    break task;
                }
                if q.closed {
                    q.threads -= 1;
                    return;
                }
                q.idle += 1;
                // A caller that called once often calls again at once: look for its next task a
                // moment before sleeping, which would cost the next call a thread wake-up.
                drop(q);
                let spun = Instant::now();
                while spun.elapsed() < SPIN {
                    if queued(queue) {
                        break;
                    }
                    std::thread::yield_now();
                }
                q = queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.tasks.is_empty() && !q.closed {
                    q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.idle -= 1;
            }
        };
        // A native's panic is caught inside its entry point; anything else must not take the
        // worker with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
    }
}
