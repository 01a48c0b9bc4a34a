//! Starting roles in dependency order.

use std::sync::Arc;

use fv_common::{FvError, FvResult};
use fv_proxy::Proxy;
use fv_runtime::RoleContext;
use fv_runtime::rpc::Role;

/// The start order: coordinators first (rootcoord before the others, which call it),
/// then the worker nodes, the proxy last ([`Role::ALL`] lists them so). Shutdown runs
/// in reverse.
pub const START_ORDER: [Role; 8] = Role::ALL;

/// Parses `standalone` or a comma list of roles.
pub fn parse_roles(spec: &str) -> FvResult<Vec<Role>> {
    if spec == "standalone" {
        return Ok(START_ORDER.to_vec());
    }
    let mut roles = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let r = Role::parse(part).ok_or_else(|| {
            FvError::invalid_parameter(format!(
                "unknown role {part:?}; expected standalone or one of rootcoord, datacoord, indexcoord, querycoord, datanode, querynode, indexnode, proxy"
            ))
        })?;
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    if roles.is_empty() {
        return Err(FvError::invalid_parameter("no role given"));
    }
    roles.sort_by_key(|r| START_ORDER.iter().position(|x| x == r));
    Ok(roles)
}

/// Starts `roles` in order; returns the proxy when one was started.
pub async fn start(ctx: &RoleContext, roles: &[Role]) -> FvResult<Option<Arc<Proxy>>> {
    let mut proxy = None;
    for role in roles {
        let c = ctx.clone();
        let r = match role {
            Role::RootCoord => fv_rootcoord::start(c).await,
            Role::DataCoord => fv_datacoord::start(c).await,
            Role::IndexCoord => fv_indexcoord::start(c).await,
            Role::QueryCoord => fv_querycoord::start(c).await,
            Role::DataNode => fv_datanode::start(c).await,
            Role::QueryNode => fv_querynode::start(c).await.map(|_| ()),
            Role::IndexNode => fv_indexnode::start(c).await,
            Role::Proxy => fv_proxy::start(c).await.map(|p| {
                proxy = Some(p);
            }),
        };
        r.map_err(|e| e.context(format!("starting {role}")))?;
    }
    Ok(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_parse_in_start_order() {
        assert_eq!(parse_roles("standalone").expect("ok").len(), 8);
        assert_eq!(parse_roles("proxy,rootcoord").expect("ok"), vec![Role::RootCoord, Role::Proxy]);
        assert!(parse_roles("nope").unwrap_err().message.contains("unknown role"));
        assert!(parse_roles("").is_err());
    }
}
