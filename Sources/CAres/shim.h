/* c-ares for spoa.dns: queries, retries and resolv.conf; its sockets are polled
 * from the worker's event loop (LuaDNS.swift). */
#include <ares.h>
#include <poll.h>
