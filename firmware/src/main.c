/* Firmware entry: start the board, then serve protocol requests until the link closes.
 * On the Arduino (Nano 33 BLE) the core owns main() and calls setup() once and loop() forever;
 * ArduinoCore-API declares both with C linkage, so this C file defines them. They live here, in
 * src/, because src/ is where app.h is on the include path: no file under lib/ includes it. */
#include "app.h"
#include "board.h"

#ifdef KWS_BOARD_NANO33BLE
void setup(void) {
  board_init(0, 0);
  kws_app_init();
}

void loop(void) { kws_app_step(); }
#else
int main(int argc, char **argv) {
  board_init(argc, argv);
  kws_app_init();
  while (kws_app_step() >= 0) {
  }
  return 0;
}
#endif
