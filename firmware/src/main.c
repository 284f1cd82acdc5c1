/* Firmware entry: start the board, then serve protocol requests until the link closes.
 * On the Arduino (Nano 33 BLE) the core owns main(); lib/board/board_nano33ble.cpp calls
 * kws_app_init()/kws_app_step() from setup()/loop() instead. */
#include "app.h"
#include "board.h"

#ifndef KWS_BOARD_NANO33BLE
int main(int argc, char **argv) {
  board_init(argc, argv);
  kws_app_init();
  while (kws_app_step() >= 0) {
  }
  return 0;
}
#endif
