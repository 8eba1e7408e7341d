//! The S3-compatible object store behind [`Location::Object`](super::Location::Object): one
//! client per bucket, configured once per process, and its async calls run on a runtime of
//! their own for callers that block.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use super::ObjectKey;

/// The size of each part of a multipart upload (S3 wants at least 5 MiB for all but the last),
/// and of each ranged read of a download: what a write or download holds in memory at a time.
pub const PART_SIZE: usize = 8 << 20;

/// How to reach an S3-compatible store, beyond the standard `AWS_*` environment variables it
/// starts from (each field set here wins). The `[s3]` section of `weir.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Options {
    /// The store's URL, e.g. `http://127.0.0.1:9000` for a self-hosted one (requests are
    /// path-style: `<endpoint>/<bucket>/<key>`). Default: AWS's endpoint of the region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`, which most self-hosted stores accept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The access key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The secret access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Allows an `http://` endpoint (no TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
}

#[derive(Default)]
struct Clients {
    options: S3Options,
    /// Buckets reached otherwise than the rest (another endpoint or credentials).
    bucket_options: HashMap<String, S3Options>,
    by_bucket: HashMap<String, Arc<AmazonS3>>,
}

fn clients() -> std::sync::MutexGuard<'static, Clients> {
    static CLIENTS: OnceLock<Mutex<Clients>> = OnceLock::new();
    CLIENTS.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets how this process reaches S3-compatible stores (clients made before are dropped).
pub fn configure_s3(options: S3Options) {
    let mut clients = clients();
    clients.options = options;
    clients.by_bucket.clear();
}

/// Sets how this process reaches `bucket`, unlike the others (as Hadoop's per-bucket
/// `fs.s3a.bucket.<name>.*`): these options replace [`configure_s3`]'s for it.
pub fn configure_s3_bucket(bucket: &str, options: S3Options) {
    let mut clients = clients();
    clients.bucket_options.insert(bucket.to_owned(), options);
    clients.by_bucket.remove(bucket);
}

fn client(bucket: &str) -> io::Result<Arc<AmazonS3>> {
    let mut clients = clients();
    if let Some(client) = clients.by_bucket.get(bucket) {
        return Ok(client.clone());
    }
    // reqwest is built without a crypto provider of its own (its default would add aws-lc-rs
    // beside the ring every other TLS connection of Weir uses): it takes the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = clients.bucket_options.get(bucket).unwrap_or(&clients.options);
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &options.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &options.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(allow) = options.allow_http {
        builder = builder.with_allow_http(allow);
    }
    let client =
        Arc::new(builder.build().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("cannot reach bucket '{bucket}': {e}"))
        })?);
    clients.by_bucket.insert(bucket.to_owned(), client.clone());
    Ok(client)
}

/// The runtime the object store's calls run on: two threads, made at the first call.
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("weir-object-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the object store's runtime: {e}")))
}

/// Runs `call` on the object store's runtime and waits for it (from any thread: it never
/// enters the caller's runtime, if any).
fn wait<T: Send + 'static>(call: impl Future<Output = io::Result<T>> + Send + 'static) -> io::Result<T> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = done.send(call.await);
    });
    result.recv().map_err(|_| io::Error::other("the object store's call was dropped"))?
}

fn error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        e => io::Error::other(e.to_string()),
    }
}

fn path(key: &ObjectKey) -> ObjectPath {
    ObjectPath::from(key.key.as_str())
}

pub(super) fn read(key: &ObjectKey) -> io::Result<Vec<u8>> {
    let (client, path) = (client(&key.bucket)?, path(key));
    wait(async move {
        let got = client.get(&path).await.map_err(error)?;
        Ok(got.bytes().await.map_err(error)?.to_vec())
    })
}

pub(super) fn size(key: &ObjectKey) -> io::Result<u64> {
    let (client, path) = (client(&key.bucket)?, path(key));
    wait(async move { Ok(client.head(&path).await.map_err(error)?.size) })
}

pub(super) fn put(key: &ObjectKey, bytes: Vec<u8>) -> io::Result<()> {
    let (client, path) = (client(&key.bucket)?, path(key));
    wait(async move { client.put(&path, PutPayload::from(bytes)).await.map(drop).map_err(error) })
}

pub(super) fn delete(key: &ObjectKey) -> io::Result<()> {
    let (client, path) = (client(&key.bucket)?, path(key));
    wait(async move { client.delete(&path).await.map_err(error) })
}

/// The prefix to list for directory `key` (`None`: the bucket's root).
fn prefix(key: &ObjectKey) -> Option<ObjectPath> {
    (!key.key.is_empty()).then(|| path(key))
}

pub(super) fn children(key: &ObjectKey) -> io::Result<Vec<String>> {
    let (client, prefix) = (client(&key.bucket)?, prefix(key));
    wait(async move {
        let listed = client.list_with_delimiter(prefix.as_ref()).await.map_err(error)?;
        let dirs = listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned));
        let files = listed.objects.iter().filter_map(|o| o.location.filename().map(str::to_owned));
        Ok(dirs.chain(files).collect())
    })
}

/// Deletes every object under directory `key`, level by level.
pub(super) fn delete_prefix(key: &ObjectKey) -> io::Result<()> {
    let (client, prefix) = (client(&key.bucket)?, prefix(key));
    wait(async move {
        let mut dirs = vec![prefix];
        while let Some(dir) = dirs.pop() {
            let listed = client.list_with_delimiter(dir.as_ref()).await.map_err(error)?;
            for object in &listed.objects {
                match client.delete(&object.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(error(e)),
                }
            }
            dirs.extend(listed.common_prefixes.into_iter().map(Some));
        }
        Ok(())
    })
}

/// Downloads `key` into local file `to` in ranged reads of [`PART_SIZE`].
pub(super) fn download(key: &ObjectKey, to: &std::path::Path) -> io::Result<u64> {
    use std::io::Write;
    let (client, path) = (client(&key.bucket)?, path(key));
    let size = {
        let (client, path) = (client.clone(), path.clone());
        wait(async move { Ok(client.head(&path).await.map_err(error)?.size) })?
    };
    let mut file = std::fs::File::create(to)?;
    let mut at = 0;
    while at < size {
        let end = size.min(at + PART_SIZE as u64);
        let (client, path) = (client.clone(), path.clone());
        let bytes = wait(async move { client.get_range(&path, at..end).await.map_err(error) })?;
        file.write_all(&bytes)?;
        at = end;
    }
    file.flush()?;
    Ok(size)
}

/// A file written into an object: one `PUT` when it fits in a part, else a multipart upload of
/// [`PART_SIZE`] parts (invisible until [`finish`](Upload::finish) completes it; aborted when
/// dropped unfinished).
pub(super) struct Upload {
    key: ObjectKey,
    buffer: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
    written: u64,
}

impl Upload {
    pub(super) fn new(key: ObjectKey) -> Self {
        Upload { key, buffer: Vec::new(), multipart: None, written: 0 }
    }

    fn put_part(&mut self, part: Vec<u8>) -> io::Result<()> {
        let upload = match &mut self.multipart {
            Some(upload) => upload,
            None => {
                let (client, path) = (client(&self.key.bucket)?, path(&self.key));
                let started = wait(async move { client.put_multipart(&path).await.map_err(error) })?;
                self.multipart.insert(started)
            }
        };
        let part = upload.put_part(PutPayload::from(part));
        wait(async move { part.await.map_err(error) })
    }

    /// Completes the object; returns its size.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        let rest = std::mem::take(&mut self.buffer);
        if self.multipart.is_none() {
            put(&self.key, rest)?;
            return Ok(self.written);
        }
        if !rest.is_empty() {
            self.put_part(rest)?;
        }
        let mut upload = self.multipart.take().expect("a multipart upload was started");
        wait(async move { upload.complete().await.map(drop).map_err(error) })?;
        Ok(self.written)
    }
}

impl io::Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        self.written += buf.len() as u64;
        while self.buffer.len() >= PART_SIZE {
            let rest = self.buffer.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.put_part(part)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mut upload) = self.multipart.take() {
            let _ = wait(async move { upload.abort().await.map_err(error) });
        }
    }
}
