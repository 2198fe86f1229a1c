//! AWS calls for code that must answer synchronously: configuration, read inside serde, and librdkafka's token
//! callback, called on whatever thread polls the client (a runtime worker among them, where blocking on a future
//! of the same runtime would deadlock it). One thread with its own runtime runs the futures; a caller waits for its
//! answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc as sync_mpsc;

use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Debug, thiserror::Error)]
#[error("the `{0}` thread has stopped")]
pub(crate) struct Stopped(String);

/// The handle to one such thread; cloning it shares the thread, which ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct BlockingAws {
    name: String,
    jobs: mpsc::UnboundedSender<Job>,
}

impl BlockingAws {
    pub(crate) fn start(name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            runtime.block_on(async move {
                while let Some(job) = queue.recv().await {
                    job.await;
                }
            });
        })?;
        Ok(Self {
            name: name.to_owned(),
            jobs,
        })
    }

    /// Runs `future` on the thread and waits for its output. The SDK clients a future uses may have been made by an
    /// earlier one: they live on this thread's runtime.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Stopped> {
        let (reply, answer) = sync_mpsc::channel();
        let job: Job = Box::pin(async move {
            let _ = reply.send(future.await);
        });
        self.jobs.send(job).map_err(|_| Stopped(self.name.clone()))?;
        answer.recv().map_err(|_| Stopped(self.name.clone()))
    }
}
