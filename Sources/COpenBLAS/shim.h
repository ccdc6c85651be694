// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). sgemm is all MiniLM needs.
#include <cblas.h>
