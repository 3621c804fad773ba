/* hiredis' reply parser (redisReader) only: luaspoa writes RESP requests
 * itself and owns the sockets (NIO). */
#include <hiredis/hiredis.h>
