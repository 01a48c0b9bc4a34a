//! A cloneable shutdown signal shared by a role's tasks.

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown { tx: std::sync::Arc::new(tx), rx }
    }

    /// Signals every clone.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the signal is triggered.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// A child signal: triggered by this one or on its own.
    pub fn child(&self) -> Shutdown {
        let child = Shutdown::new();
        let parent = self.clone();
        let c = child.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = parent.wait() => c.trigger(),
                _ = c.wait() => {}
            }
        });
        child
    }
}
