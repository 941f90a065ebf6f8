/* Lease: a node's heartbeat, as Kubernetes' coordination Lease. Written only by the apiserver's
 * RenewLease (Apply refuses it) and attached to an etcd lease, so when a node stops renewing,
 * etcd deletes it and every watcher of leases sees DELETED: that is how the scheduler's node
 * lifecycle learns a node is gone, without a write per heartbeat. */
#include "api/kind-internal.h"

const api_field api_lease_spec_fields[] = {
    API_F_STRING("holder", true, 0, api_check_ref_name),
    API_F_STRING("renewTime", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_INT("leaseDurationSeconds", false, 1, 300),
    API_F_END,
};
