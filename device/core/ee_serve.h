/* The protocol loop (ee_serve.c), for a board's main: semhil's firmware or a MicroPython module. */
#ifndef SEMHIL_EE_SERVE_H
#define SEMHIL_EE_SERVE_H

/* Initialises the model; extra_info: more "key=value\n" lines for INFO ("" for none), kept by pointer. */
void ee_start(const char *extra_info);
/* Answers frames from th_uart_read_byte until a RELEASE frame (answered RELEASED), then returns. */
void ee_serve(void);

#endif
