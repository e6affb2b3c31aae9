# frozen_string_literal: true

module Lunar
  VERSION = "0.1.0"
end
