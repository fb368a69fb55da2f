/* Downstream program for the install test: header and library found through the installed
 * CMake package or pkg-config file. */
#include <rmqstream.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    uint32_t index = 0;
    if (rmqs_version_number() != RMQS_VERSION_NUMBER) {
        fprintf(stderr, "library version %s does not match the header\n", rmqs_version());
        return 1;
    }
    if (rmqs_super_stream_partition((const uint8_t *)"hello1", strlen("hello1"), 3, &index, NULL) !=
            RMQS_OK ||
        index != 1) {
        fprintf(stderr, "hash routing of hello1 gave %u\n", (unsigned)index);
        return 1;
    }
    printf("consumer: rmqstream %s ok\n", rmqs_version());
    return 0;
}
