/* stratus-node-agent: placeholder until its issue lands. It only answers --version and says it is not built. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("stratus-node-agent %s\n", STRATUS_VERSION);
        return 0;
    }
    fprintf(stderr, "error: stratus-node-agent is not implemented yet\n");
    return 1;
}
