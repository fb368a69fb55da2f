/* Prints the library version and the super stream partition (hash routing, as the Java, Go,
 * .NET, Rust and JS clients compute it) of each routing key given on the command line.
 *
 *   version [-n PARTITIONS] [KEY...]      e.g.  version -n 3 hello1 hello2
 */
#include <rmqstream.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    uint32_t partitions = 3;
    int i = 1;
    printf("rmqstream %s (header %d.%d.%d)\n", rmqs_version(), RMQS_VERSION_MAJOR,
           RMQS_VERSION_MINOR, RMQS_VERSION_PATCH);
    if (rmqs_version_number() != RMQS_VERSION_NUMBER) {
        fprintf(stderr, "warning: the library does not match the header\n");
    }
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        partitions = (uint32_t)strtoul(argv[2], NULL, 10);
        i = 3;
    }
    for (; i < argc; i++) {
        uint32_t index = 0;
        rmqs_status st = rmqs_super_stream_partition((const uint8_t *)argv[i], strlen(argv[i]),
                                                     partitions, &index, NULL);
        if (st != RMQS_OK) {
            fprintf(stderr, "%s: %s (%s)\n", argv[i], rmqs_status_str(st), rmqs_status_name(st));
            return 1;
        }
        printf("%s -> %u of %u\n", argv[i], (unsigned)index, (unsigned)partitions);
    }
    return 0;
}
