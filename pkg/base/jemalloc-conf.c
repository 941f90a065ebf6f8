/* jemalloc's options for the programs that link it (stratus_malloc in CMakeLists.txt: the
 * apiserver, the scheduler, scheduler-bench); jemalloc reads this symbol when it starts, and the
 * MALLOC_CONF environment variable after it.
 *
 * jemalloc keeps freed pages for its decay time (10 s) to serve the next burst without faulting
 * them in again, but gives them back only from inside allocator calls: a process that has gone
 * quiet kept what its last burst freed (the apiserver with 10,000 objects stayed at ~107 MiB after
 * a List, instead of ~92 MiB). A background thread purges on time instead, and purged pages go
 * straight back to the kernel (muzzy_decay_ms:0: MADV_DONTNEED, not MADV_FREE, whose pages count
 * as resident until the kernel wants them). scheduler-bench showed no cost. */
const char *malloc_conf = "background_thread:true,muzzy_decay_ms:0";
