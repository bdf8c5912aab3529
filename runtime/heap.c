/*
** heap.c: heap advice for the tide command's Lua state: glibc's heap grows
** in large steps (a million tasks take over a gigabyte, a brk call each
** 128 KiB otherwise). Pages stay 4 KiB: transparent huge pages (madvise)
** made the page faults of a million tasks cost 2 to 3 s of system time
** where 4 KiB pages cost 0.5 s, on the VMs measured (each 2 MiB page is
** zeroed whole, mostly from memory the host has not backed yet), more
** than the tasks' own work. Embedding hosts keep their own allocator.
*/
#include <malloc.h>

#include "tide_int.h"

void tide__heapadvice (lua_State *L) {
  (void)L;
  mallopt(M_TOP_PAD, 64 << 20);
}
