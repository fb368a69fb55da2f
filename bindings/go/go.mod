module github.com/rmqstream/rmqstream/bindings/go

go 1.19
