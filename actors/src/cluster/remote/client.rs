//! The client side of the control protocol: what `weir run`, `list`, `status`, `cancel`,
//! `savepoint` and `stop` use to talk to a JobManager.

use std::net::SocketAddr;
use std::sync::Arc;

use weir_dataplane::{ControlReceiver, ControlSender, NetConfig, NetEndpoint, NodeIdentity, open_control};

use crate::JobSubmission;
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::cluster::fault_injection::Kill;
use crate::cluster::remote::protocol::{ClientRequest, ClientResponse, ClusterOverview, CutConnections, Hello};
use crate::cluster::{JobDetails, JobOverview};

/// A connection to a JobManager.
pub struct ClusterClient {
    endpoint: Arc<NetEndpoint>,
    tx: ControlSender,
    rx: ControlReceiver,
    job_manager: SocketAddr,
}

impl ClusterClient {
    /// Connects with the cluster's identity.
    pub async fn connect(job_manager: SocketAddr, identity: &NodeIdentity, net: NetConfig) -> Result<Self> {
        let local: SocketAddr = if job_manager.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("address");
        let max_frame = net.max_frame_bytes;
        let endpoint = NetEndpoint::bind(local, identity, net)?;
        let conn = endpoint
            .connect(job_manager)
            .await
            .map_err(|e| WeirError::runtime(format!("cannot reach the job manager at {job_manager}: {e}")))?;
        let (mut tx, rx) = open_control(&conn, max_frame).await?;
        tx.send(&Hello::Client).await?;
        Ok(ClusterClient { endpoint, tx, rx, job_manager })
    }

    async fn request(&mut self, request: ClientRequest) -> Result<ClientResponse> {
        self.tx.send(&request).await?;
        self.rx
            .recv::<ClientResponse>()
            .await?
            .ok_or_else(|| WeirError::runtime(format!("the job manager at {} closed the connection", self.job_manager)))
    }

    fn unexpected(response: ClientResponse) -> WeirError {
        WeirError::runtime(format!("unexpected answer from the job manager: {response:?}"))
    }

    /// Builds the job's plan here (the client-side checks run on this machine) and submits it.
    pub async fn submit(&mut self, job: &JobSubmission) -> Result<JobId> {
        let prepared = job.prepare()?;
        let request = ClientRequest::Submit {
            job: prepared.name,
            args: prepared.args,
            parallelism: prepared.parallelism,
            graph: Box::new(prepared.graph),
            config: Box::new(prepared.config),
        };
        match self.request(request).await? {
            ClientResponse::Submitted(result) => result.map_err(WeirError::runtime),
            other => Err(Self::unexpected(other)),
        }
    }

    /// All jobs.
    pub async fn jobs(&mut self) -> Result<Vec<JobOverview>> {
        match self.request(ClientRequest::List).await? {
            ClientResponse::Jobs(jobs) => Ok(jobs),
            other => Err(Self::unexpected(other)),
        }
    }

    /// One job's details.
    pub async fn details(&mut self, id: JobId) -> Result<JobDetails> {
        match self.request(ClientRequest::Details(id)).await? {
            ClientResponse::Details(result) => result.map(|d| *d).map_err(WeirError::runtime),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Cancels a job.
    pub async fn cancel(&mut self, id: JobId) -> Result<()> {
        match self.request(ClientRequest::Cancel(id)).await? {
            ClientResponse::Cancelled(result) => result.map_err(WeirError::runtime),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Takes a savepoint of job `id` into a directory under `dir` (a path the JobManager
    /// and the TaskManagers reach), stopping the job after it if `stop`; returns the
    /// savepoint's directory once it completed.
    pub async fn savepoint(
        &mut self,
        id: JobId,
        dir: weir_state::storage::Location,
        stop: Option<crate::runtime::checkpoint::StopMode>,
    ) -> Result<weir_state::storage::Location> {
        match self.request(ClientRequest::TriggerSavepoint { job: id, dir, stop }).await? {
            ClientResponse::Savepoint(result) => {
                result.map_err(|e| WeirError::Savepoint(e.strip_prefix("savepoint: ").map(str::to_owned).unwrap_or(e)))
            }
            other => Err(Self::unexpected(other)),
        }
    }

    /// The cluster's TaskManagers, jobs and refused connections.
    pub async fn overview(&mut self) -> Result<ClusterOverview> {
        match self.request(ClientRequest::Overview).await? {
            ClientResponse::Overview(overview) => Ok(overview),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Fault injection: cuts connections of the cluster (see [`CutConnections`]); returns
    /// how many TaskManagers' connections were cut. The JobManager refuses unless it runs with
    /// fault injection on.
    pub async fn cut_connections(&mut self, cut: CutConnections) -> Result<usize> {
        match self.request(ClientRequest::CutConnections(cut)).await? {
            ClientResponse::ConnectionsCut(result) => result.map_err(WeirError::runtime),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Fault injection: kills an actor of the cluster, as a crash would (see [`Kill`]). The
    /// JobManager refuses unless it runs with fault injection on.
    pub async fn kill(&mut self, kill: Kill) -> Result<()> {
        match self.request(ClientRequest::Kill(kill)).await? {
            ClientResponse::Killed(result) => result.map_err(WeirError::runtime),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.tx.finish().await;
        self.endpoint.close();
    }
}
