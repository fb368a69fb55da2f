// The same test compiled as C++17: the header must be valid, warning-free C++ too.
#include "test_client.c"
