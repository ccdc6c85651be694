#include <sqlite3.h>
// SQLITE_TRANSIENT is a macro Swift cannot import: the destructor value -1.
static inline sqlite3_destructor_type sextant_sqlite_transient(void) { return (sqlite3_destructor_type)-1; }
