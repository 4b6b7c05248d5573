//! `livekit.Node`: what a node publishes about itself in the registry.

use crate::read::proto::{NodePb, NodeStatsPb};
use crate::NodeStats;
use prost::Message;
use std::fmt;
use std::str::FromStr;

/// `livekit.NodeState`. Only [`NodeState::Serving`] nodes are selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Starting (0), LiveKit's default value.
    StartingUp,
    /// Accepting rooms (1); what a publisher writes unless told otherwise.
    #[default]
    Serving,
    /// Draining (2): existing rooms stay, new ones go elsewhere.
    ShuttingDown,
    /// Suspended (3).
    Suspended,
    /// A value this version does not know; kept so it round-trips.
    Other(i32),
}

impl NodeState {
    /// The protobuf enum value.
    pub fn to_i32(self) -> i32 {
        match self {
            NodeState::StartingUp => 0,
            NodeState::Serving => 1,
            NodeState::ShuttingDown => 2,
            NodeState::Suspended => 3,
            NodeState::Other(v) => v,
        }
    }

    /// From the protobuf enum value.
    pub fn from_i32(v: i32) -> Self {
        match v {
            0 => NodeState::StartingUp,
            1 => NodeState::Serving,
            2 => NodeState::ShuttingDown,
            3 => NodeState::Suspended,
            v => NodeState::Other(v),
        }
    }

    /// LiveKit's name (`SERVING`, ...).
    pub fn name(self) -> String {
        match self {
            NodeState::StartingUp => "STARTING_UP".into(),
            NodeState::Serving => "SERVING".into(),
            NodeState::ShuttingDown => "SHUTTING_DOWN".into(),
            NodeState::Suspended => "SUSPENDED".into(),
            NodeState::Other(v) => v.to_string(),
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for NodeState {
    type Err = String;

    /// `serving`, `starting_up`, `shutting_down` or `suspended`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "starting_up" => Ok(NodeState::StartingUp),
            "serving" => Ok(NodeState::Serving),
            "shutting_down" => Ok(NodeState::ShuttingDown),
            "suspended" => Ok(NodeState::Suspended),
            _ => Err(format!(
                "unknown node state {s:?}: use serving, starting_up, shutting_down or suspended"
            )),
        }
    }
}

/// One `livekit.Node` as stored in the Redis hash `nodes`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// The node id (LiveKit: `ND_` + 12 characters; nothing parses it).
    pub id: String,
    /// The node's primary IP.
    pub ip: String,
    /// CPUs of the host.
    pub num_cpus: u32,
    /// The latest NodeStats; LiveKit always sets it once started.
    pub stats: Option<NodeStats>,
    /// `livekit.NodeType` (0 = SERVER).
    pub node_type: i32,
    /// `livekit.NodeState`.
    pub state: NodeState,
    /// The configured region.
    pub region: String,
}

impl Node {
    /// The binary protobuf written into the hash (`livekit.Node`).
    pub fn encode(&self) -> Vec<u8> {
        NodePb {
            id: self.id.clone(),
            ip: self.ip.clone(),
            num_cpus: self.num_cpus,
            stats: self.stats.as_ref().map(NodeStatsPb::from),
            r#type: self.node_type,
            state: self.state.to_i32(),
            region: self.region.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes a hash value. Bad bytes are an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let pb = NodePb::decode(bytes)?;
        Ok(Node {
            id: pb.id,
            ip: pb.ip,
            num_cpus: pb.num_cpus,
            stats: pb.stats.map(NodeStats::from),
            node_type: pb.r#type,
            state: NodeState::from_i32(pb.state),
            region: pb.region,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_numbers_and_names() {
        for v in -1..5 {
            assert_eq!(NodeState::from_i32(v).to_i32(), v);
        }
        assert_eq!(NodeState::default(), NodeState::Serving);
        assert_eq!("Shutting_Down".parse(), Ok(NodeState::ShuttingDown));
        assert!("draining".parse::<NodeState>().is_err());
        assert_eq!(NodeState::Suspended.to_string(), "SUSPENDED");
    }

    #[test]
    fn nodes_round_trip_and_garbage_is_an_error() {
        let n = Node {
            id: "ND_x".into(),
            ip: "10.1.2.3".into(),
            num_cpus: 8,
            stats: Some(NodeStats {
                updated_at: 5,
                num_cpus: 8,
                num_cpus_exact: 8.0,
                ..NodeStats::default()
            }),
            node_type: 0,
            state: NodeState::ShuttingDown,
            region: "eu-west".into(),
        };
        assert_eq!(Node::decode(&n.encode()).unwrap(), n);
        assert!(Node::decode(b"\xff\xff\xff").is_err());
        // An empty value is a valid, empty Node: no stats.
        assert_eq!(Node::decode(&[]).unwrap().stats, None);
    }
}
