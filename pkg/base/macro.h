/* Small macros every Stratus module uses: cleanup attributes, ownership transfer, array sizes.
 * Not for anything with state; see alloc.h for the allocation wrappers. */
#pragma once

#include <stddef.h>
#include <stdlib.h>

#define _cleanup_(f)         __attribute__((cleanup(f)))
#define _unused_             __attribute__((unused))
#define _noreturn_           __attribute__((noreturn))
#define _printf_(a, b)       __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _fallthrough_        __attribute__((fallthrough))
#define _likely_(x)          __builtin_expect(!!(x), 1)
#define _unlikely_(x)        __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Returns *p and sets *p to NULL: hands ownership from a _cleanup_ variable to someone else. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        typeof(p) *_pp_ = &(p);                                                                    \
        typeof(p) _ret_ = *_pp_;                                                                   \
        *_pp_ = NULL;                                                                              \
        _ret_;                                                                                     \
    })

/* Defines func##p(type **p) that calls func(*p) when *p is not NULL, for _cleanup_(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
    static inline void func##p(type *p)                                                            \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

static inline void freep(void *p)
{
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Frees p and returns NULL, so that `x = mfree(x);` leaves no dangling pointer. */
static inline void *mfree(void *p)
{
    free(p);
    return NULL;
}

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
