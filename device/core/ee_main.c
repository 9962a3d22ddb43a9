/* semhil's firmware: the board's port, then the protocol loop for ever (RELEASE gives nothing back to). */
#include "ee_serve.h"
#include "th_port.h"

int main(void)
{
    th_init();
    ee_start("");
    for (;;)
        ee_serve();
}
