//! Who emits (project, service, host, stamped on every message) and the keys incoming trace
//! headers are verified against: process-wide, set once at start-up by `init_from_conf`.

use crate::message::Identity;

fn identity_slot() -> &'static std::sync::RwLock<Option<&'static Identity>> {
    static SLOT: std::sync::RwLock<Option<&'static Identity>> = std::sync::RwLock::new(None);
    &SLOT
}

/// The machine's hostname, as Python's `socket.gethostname()`.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Bumped by [`set_identity`]: threads keep the identity they last read with the generation it
/// belonged to, so a trace reads one shared counter instead of taking the lock (whose count
/// every core would write to).
static IDENTITY_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn identity() -> &'static Identity {
    thread_local! {
        static SEEN: std::cell::Cell<Option<(u64, &'static Identity)>> =
            const { std::cell::Cell::new(None) };
    }
    let generation = IDENTITY_GENERATION.load(std::sync::atomic::Ordering::Acquire);
    if let Ok(Some((g, id))) = SEEN.try_with(std::cell::Cell::get)
        && g == generation
    {
        return id;
    }
    let id = locked_identity();
    let _ = SEEN.try_with(|s| s.set(Some((generation, id))));
    id
}

fn locked_identity() -> &'static Identity {
    if let Some(id) = *identity_slot().read().unwrap_or_else(|e| e.into_inner()) {
        return id;
    }
    let mut slot = identity_slot().write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| {
        Box::leak(Box::new(Identity {
            project: None,
            service: None,
            host: hostname().into(),
        }))
    })
}

/// Sets the project, service and host stamped on the messages of traces started from now on
/// (`None` host = this machine's hostname).
///
/// Meant for start-up: each call keeps its few bytes for the life of the process, which is what
/// lets every message refer to the identity without a reference count.
pub fn set_identity(project: Option<&str>, service: Option<&str>, host: Option<&str>) {
    let id = Identity {
        project: project.map(Into::into),
        service: service.map(Into::into),
        host: host.map_or_else(hostname, str::to_owned).into(),
    };
    *identity_slot().write().unwrap_or_else(|e| e.into_inner()) = Some(Box::leak(Box::new(id)));
    // After the new identity is in place: a thread that sees the new generation reads it.
    IDENTITY_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

fn keys_slot() -> &'static std::sync::RwLock<std::sync::Arc<[String]>> {
    static SLOT: std::sync::OnceLock<std::sync::RwLock<std::sync::Arc<[String]>>> =
        std::sync::OnceLock::new();
    SLOT.get_or_init(|| std::sync::RwLock::new(std::sync::Arc::from(vec!["SECRET_KEY".to_owned()])))
}

/// The keys incoming trace headers are verified against, in order (set by `init_from_conf`;
/// default `["SECRET_KEY"]`). Server middleware reads these unless given its own.
pub fn hmac_keys() -> std::sync::Arc<[String]> {
    keys_slot()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Replaces the process-wide verification keys (rotation: add the new key first, later drop
/// the old one).
pub fn set_hmac_keys(keys: Vec<String>) {
    *keys_slot().write().unwrap_or_else(|e| e.into_inner()) = keys.into();
}
