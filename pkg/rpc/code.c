/* Status codes: their names and the one table between Stratus's -errno values and gRPC status
 * codes. The errno side follows pkg/store's conventions (store.h) so that a store error can be
 * passed to rpc_code_from_errno() unchanged; docs/rpc.md shows the same table. */
#include <errno.h>
#include <string.h>

#include "base/macro.h"
#include "rpc/rpc-internal.h"

static const char *const code_names[_RPC_CODE_MAX] = {
    [RPC_CODE_OK] = "OK",
    [RPC_CODE_CANCELLED] = "CANCELLED",
    [RPC_CODE_UNKNOWN] = "UNKNOWN",
    [RPC_CODE_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [RPC_CODE_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [RPC_CODE_NOT_FOUND] = "NOT_FOUND",
    [RPC_CODE_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [RPC_CODE_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [RPC_CODE_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [RPC_CODE_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [RPC_CODE_ABORTED] = "ABORTED",
    [RPC_CODE_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [RPC_CODE_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [RPC_CODE_INTERNAL] = "INTERNAL",
    [RPC_CODE_UNAVAILABLE] = "UNAVAILABLE",
    [RPC_CODE_DATA_LOSS] = "DATA_LOSS",
    [RPC_CODE_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *rpc_code_to_string(rpc_code c)
{
    if ((unsigned)c >= _RPC_CODE_MAX)
        return "UNKNOWN";
    return code_names[c];
}

/* errno → code. The first row for a code is its canonical errno (rpc_code_to_errno). */
static const struct {
    int error;
    rpc_code code;
} errno_map[] = {
    {EINVAL, RPC_CODE_INVALID_ARGUMENT},
    {ENOENT, RPC_CODE_NOT_FOUND},
    {ETIME, RPC_CODE_NOT_FOUND}, /* store: the lease expired or never existed */
    {EEXIST, RPC_CODE_ALREADY_EXISTS},
    {ESTALE, RPC_CODE_ABORTED},      /* store: compare on mod_revision failed; re-read and retry */
    {ERANGE, RPC_CODE_OUT_OF_RANGE}, /* store: revision compacted; the watcher must relist */
    {EBUSY, RPC_CODE_FAILED_PRECONDITION},
    {EALREADY, RPC_CODE_FAILED_PRECONDITION},
    {ENOTEMPTY, RPC_CODE_FAILED_PRECONDITION},
    {ENOSPC, RPC_CODE_RESOURCE_EXHAUSTED},
    {EMSGSIZE, RPC_CODE_RESOURCE_EXHAUSTED}, /* store: request or response over a size cap */
    {E2BIG, RPC_CODE_RESOURCE_EXHAUSTED},    /* store: too many operations in one transaction */
    {ENOBUFS, RPC_CODE_RESOURCE_EXHAUSTED},
    {EDQUOT, RPC_CODE_RESOURCE_EXHAUSTED},
    {EACCES, RPC_CODE_PERMISSION_DENIED},
    {EPERM, RPC_CODE_PERMISSION_DENIED},
    {EKEYREJECTED, RPC_CODE_UNAUTHENTICATED},
    {EHOSTDOWN, RPC_CODE_UNAVAILABLE}, /* store: no etcd endpoint could serve; nothing applied */
    {ECONNRESET, RPC_CODE_UNAVAILABLE},
    {ECONNREFUSED, RPC_CODE_UNAVAILABLE},
    {ENOTCONN, RPC_CODE_UNAVAILABLE},
    {EHOSTUNREACH, RPC_CODE_UNAVAILABLE},
    {ENETUNREACH, RPC_CODE_UNAVAILABLE},
    {EAGAIN, RPC_CODE_UNAVAILABLE},
    {ETIMEDOUT, RPC_CODE_DEADLINE_EXCEEDED},
    {ECANCELED, RPC_CODE_CANCELLED},
    {EOPNOTSUPP, RPC_CODE_UNIMPLEMENTED},
    {ENOSYS, RPC_CODE_UNIMPLEMENTED},
    {EPROTO, RPC_CODE_INTERNAL},  /* also every errno not in this table */
    {EBADMSG, RPC_CODE_INTERNAL}, /* store: malformed etcd response (not the client's fault) */
    {EIO, RPC_CODE_INTERNAL},
    {EUCLEAN, RPC_CODE_DATA_LOSS},
};

rpc_code rpc_code_from_errno(int error)
{
    if (error < 0)
        error = -error;
    if (error == 0)
        return RPC_CODE_OK;
    for (size_t i = 0; i < ELEMENTSOF(errno_map); i++)
        if (errno_map[i].error == error)
            return errno_map[i].code;
    return RPC_CODE_INTERNAL;
}

int rpc_code_to_errno(rpc_code c)
{
    if (c == RPC_CODE_OK)
        return 0;
    if (c == RPC_CODE_UNKNOWN)
        return -EPROTO;
    for (size_t i = 0; i < ELEMENTSOF(errno_map); i++)
        if (errno_map[i].code == c)
            return -errno_map[i].error;
    return -EPROTO;
}

void rpc_status_set(rpc_status *status, rpc_code code, const char *message, size_t len)
{
    if (!status)
        return;
    status->code = code;
    len = MIN(len, sizeof(status->message) - 1);
    if (len > 0)
        memcpy(status->message, message, len);
    status->message[len] = '\0';
}
