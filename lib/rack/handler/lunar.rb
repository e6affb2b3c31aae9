# frozen_string_literal: true

# `rackup -s lunar` (Rack 2.2) and `rails server -u lunar` (Rails 6.1) look for this file.
require "lunar/rack_handler"

Rack::Handler.register("lunar", Lunar::RackHandler) if defined?(Rack::Handler) && Rack::Handler.respond_to?(:register)
