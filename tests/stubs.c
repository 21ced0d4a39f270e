/* Nothing yet: unit tests link the real objects. */
